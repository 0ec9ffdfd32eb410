//! `verify`: compares a mirror store with the primary one key by key (and version by version
//! when both keep versions), walking both listings side by side in key order, a page at a
//! time, and reports what differs.

use std::collections::BTreeSet;

use futures::{StreamExt as _, TryStreamExt as _};

use crate::domain::BlobKey;
use crate::store::{BlobStore, Listing, StoreError, StoredVersion};

use super::backfill::{Backfill, BackfillError, store_failed};

/// Keys listed per call on each side.
const PAGE: usize = 1000;
/// Versions listed per call.
const VERSIONS_PAGE: usize = 100;
/// Keys compared per batch, and at once.
const BATCH: usize = 256;
const COMPARES: usize = 16;
/// Keys of each kind named in the report.
const SAMPLE: usize = 20;

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Differences {
    /// Keys compared (in either store).
    pub checked: u64,
    /// Keys the primary store has and the mirror lacks.
    pub missing: Vec<String>,
    pub missing_count: u64,
    /// Keys the mirror has and the primary store does not.
    pub extra: Vec<String>,
    pub extra_count: u64,
    /// Keys both have, at another version (or with other versions kept).
    pub differing: Vec<String>,
    pub differing_count: u64,
    /// Keys that differ and are owed to the mirror: a copier is on its way (not a fault).
    pub in_flight: u64,
}

impl Differences {
    pub fn clean(&self) -> bool {
        self.missing_count + self.extra_count + self.differing_count == 0
    }
}

/// One side's listing, read a page at a time.
struct Walk<'a> {
    store: &'a dyn BlobStore,
    page: std::vec::IntoIter<(String, u64)>,
    after: Option<String>,
    done: bool,
}

impl<'a> Walk<'a> {
    fn new(store: &'a dyn BlobStore) -> Self {
        Self {
            store,
            page: Vec::new().into_iter(),
            after: None,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<String>, StoreError> {
        loop {
            if let Some((key, _)) = self.page.next() {
                self.after = Some(key.clone());
                return Ok(Some(key));
            }
            if self.done {
                return Ok(None);
            }
            let Listing { objects, truncated } =
                self.store.list("", self.after.as_deref(), PAGE).await?;
            self.done = !truncated || objects.is_empty();
            self.page = objects.into_iter();
        }
    }
}

impl Backfill {
    /// Compares the mirror with the primary store, telling `progress` the keys checked so far
    /// after each batch.
    pub async fn verify(
        &self,
        mut progress: impl FnMut(u64),
    ) -> Result<Differences, BackfillError> {
        let (primary, mirror) = self.stores();
        let mut found = Differences::default();
        let mut left = Walk::new(primary);
        let mut right = Walk::new(mirror);
        let listing = |e| store_failed("listing a store", e);
        let (mut a, mut b) = (
            left.next().await.map_err(listing)?,
            right.next().await.map_err(listing)?,
        );
        loop {
            // A batch of keys in key order, each with where it is; those in both stores are
            // then compared a few at a time.
            let mut batch = Vec::with_capacity(BATCH);
            while batch.len() < BATCH {
                let (key, kind) = match (a.take(), b.take()) {
                    (None, None) => break,
                    (Some(x), Some(y)) if x == y => {
                        a = left.next().await.map_err(listing)?;
                        b = right.next().await.map_err(listing)?;
                        (x, None)
                    }
                    (Some(x), y) if y.as_ref().is_none_or(|y| x < *y) => {
                        (a, b) = (left.next().await.map_err(listing)?, y);
                        (x, Some(Kind::Missing))
                    }
                    (x, Some(y)) => {
                        (a, b) = (x, right.next().await.map_err(listing)?);
                        (y, Some(Kind::Extra))
                    }
                    (Some(_), None) => unreachable!("covered above"),
                };
                batch.push((key, kind));
            }
            if batch.is_empty() {
                break;
            }
            let compared: Vec<(String, Option<Kind>)> = futures::stream::iter(batch)
                .map(async |(key, kind)| match kind {
                    Some(kind) => Ok((key, Some(kind))),
                    None => {
                        let same = self.compare(&key).await?;
                        Ok::<_, BackfillError>((key, (!same).then_some(Kind::Differing)))
                    }
                })
                .buffered(COMPARES)
                .try_collect()
                .await?;
            for (key, kind) in compared {
                found.checked += 1;
                if let Some(kind) = kind {
                    self.record(&mut found, key, kind).await?;
                }
            }
            progress(found.checked);
        }
        Ok(found)
    }

    /// How many keys the primary store lists after `after` (the back-fill's bar: counted
    /// beside it, a page of keys at a time, none kept).
    pub async fn keys_after(&self, after: Option<String>) -> Result<u64, BackfillError> {
        let (primary, _) = self.stores();
        let mut walk = Walk::new(primary);
        walk.after = after;
        let mut count = 0;
        while walk
            .next()
            .await
            .map_err(|e| store_failed("listing the primary store", e))?
            .is_some()
        {
            count += 1;
        }
        Ok(count)
    }

    async fn record(
        &self,
        found: &mut Differences,
        key: String,
        kind: Kind,
    ) -> Result<(), BackfillError> {
        if self.owed(&key).await? {
            found.in_flight += 1;
            return Ok(());
        }
        let (sample, count) = match kind {
            Kind::Missing => (&mut found.missing, &mut found.missing_count),
            Kind::Extra => (&mut found.extra, &mut found.extra_count),
            Kind::Differing => (&mut found.differing, &mut found.differing_count),
        };
        *count += 1;
        if sample.len() < SAMPLE {
            sample.push(key);
        }
        Ok(())
    }

    /// Whether both stores hold the same of `key`: the same version (and extension), or,
    /// with histories, the same versions (a version written twice counts once).
    async fn compare(&self, key: &str) -> Result<bool, BackfillError> {
        let Ok(key) = BlobKey::parse(key.to_owned()) else {
            return Ok(true);
        };
        let (primary, mirror) = self.stores();
        let failed = |e| store_failed(&format!("comparing {key}"), e);
        let same = if self.copies_histories() {
            let kept = async |store| -> Result<BTreeSet<(u64, bool, String)>, StoreError> {
                Ok(all_versions(store, &key)
                    .await?
                    .into_iter()
                    .map(|v| (v.info.version, v.deleted, v.info.extension))
                    .collect())
            };
            let (kept, copied) = tokio::join!(kept(primary), kept(mirror));
            kept.map_err(failed)? == copied.map_err(failed)?
        } else {
            let (kept, copied) = tokio::join!(primary.describe(&key), mirror.describe(&key));
            kept.map_err(failed)? == copied.map_err(failed)?
        };
        Ok(same)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Missing,
    Extra,
    Differing,
}

/// Every version `store` keeps of `key`, newest first.
pub(super) async fn all_versions(
    store: &dyn BlobStore,
    key: &BlobKey,
) -> Result<Vec<StoredVersion>, StoreError> {
    let mut versions = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.versions(key, after.as_deref(), VERSIONS_PAGE).await?;
        versions.extend(page.versions);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    versions.sort_by_key(|v| std::cmp::Reverse(v.info.version));
    Ok(versions)
}
