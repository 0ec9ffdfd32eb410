//! Back-filling a mirror store added to a deployment that already holds objects: every object
//! of the primary store (and, when both buckets keep versions, every version of it, oldest
//! first) is copied to the mirror, in the primary's key order, a page at a time; the cursor
//! after each page is kept in Redis, so a killed back-fill resumes where it stopped.
//!
//! Order holds with the copiers running: the back-fill takes a key's copier lease for the
//! mirror while it copies the key, so no copier writes the key there at the same time, and a
//! copy turned away meanwhile is due at once when it lets go. It copies only what the mirror
//! lacks (so a second run copies nothing), and when it must write an older version the mirror
//! lacks, it writes every newer one again after it, so the mirror's newest is the primary's.
//! Keys whose newest version is a delete are not in the primary's listing: their history
//! stays behind (the copiers carry deletes made from now on).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::Mutex;

use crate::cache::{BackfillCursor, BlobCache, CacheError, UploadLease};
use crate::domain::BlobKey;
use crate::store::{BlobStore, StoreError};

use super::backfill_check::all_versions;

/// Keys listed (and then copied) per page; the cursor is saved after each.
const PAGE: usize = 500;
/// How long the back-fill may hold a key before a copier may take it over.
const HOLD: Duration = Duration::from_secs(300);

/// How fast a back-fill goes.
#[derive(Debug, Clone, Copy)]
pub struct BackfillPace {
    /// Keys copied at once.
    pub concurrency: usize,
    /// Objects written to the mirror per second at most (`None`: as fast as it can), so the
    /// back-fill leaves the primary store's bandwidth to the drain.
    pub per_second: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Store(String),
}

/// Copies one mirror's missing objects from the primary store.
#[derive(Clone)]
pub struct Backfill {
    pub name: String,
    cache: BlobCache,
    primary: Arc<dyn BlobStore>,
    mirror: Arc<dyn BlobStore>,
    /// Both buckets keep versions: each key's history is copied, not its newest version only.
    histories: bool,
    pace: BackfillPace,
    /// When the next object may be written, with `pace.per_second`.
    next_write: Arc<Mutex<tokio::time::Instant>>,
}

/// What copying one key wrote.
#[derive(Debug, Default)]
struct Copied {
    objects: u64,
    versions: u64,
}

impl Backfill {
    pub fn new(
        name: String,
        cache: BlobCache,
        (primary, mirror): (Arc<dyn BlobStore>, Arc<dyn BlobStore>),
        histories: bool,
        pace: BackfillPace,
    ) -> Self {
        Self {
            name,
            cache,
            primary,
            mirror,
            histories,
            pace,
            next_write: Arc::new(Mutex::new(tokio::time::Instant::now())),
        }
    }

    /// Whether both buckets keep versions (then histories are copied and compared).
    pub fn copies_histories(&self) -> bool {
        self.histories
    }

    /// The primary store and the mirror.
    pub(super) fn stores(&self) -> (&dyn BlobStore, &dyn BlobStore) {
        (self.primary.as_ref(), self.mirror.as_ref())
    }

    /// Whether the mirror is owed a newer version of `key` (a copier is on its way).
    pub(super) async fn owed(&self, key: &str) -> Result<bool, BackfillError> {
        Ok(self.cache.mirror_owed(&self.name, key).await?)
    }

    /// Where the last run stopped (the start, when it finished or never ran).
    pub async fn cursor(&self) -> Result<BackfillCursor, BackfillError> {
        Ok(self.cache.backfill_cursor(&self.name).await?)
    }

    /// Copies what the mirror lacks from where the last run stopped to the end, telling
    /// `progress` after each page (with the keys looked at so far in this run). Returns the
    /// totals and the keys this run looked at; the next run starts over (and copies nothing
    /// that is already there).
    pub async fn run(
        &self,
        mut progress: impl FnMut(&BackfillCursor, u64),
    ) -> Result<(BackfillCursor, u64), BackfillError> {
        let mut cursor = self.cursor().await?;
        let mut looked_at = 0;
        loop {
            let page = self
                .primary
                .list("", cursor.after.as_deref(), PAGE)
                .await
                .map_err(|e| store_failed("listing the primary store", e))?;
            let Some((last, _)) = page.objects.last() else {
                break;
            };
            let last = last.clone();
            let in_mirror = self.mirror_keys(cursor.after.as_deref(), &last).await?;
            let keys = page.objects.into_iter().map(|(key, _)| {
                let there = in_mirror.contains(&key);
                (key, there)
            });
            let copied: Vec<Copied> = futures::stream::iter(keys)
                .map(|(key, there)| self.backfill_key(key, there))
                .buffer_unordered(self.pace.concurrency.max(1))
                .try_collect()
                .await?;
            looked_at += copied.len() as u64;
            cursor.objects += copied.iter().map(|c| c.objects).sum::<u64>();
            cursor.versions += copied.iter().map(|c| c.versions).sum::<u64>();
            cursor.after = Some(last);
            self.cache
                .save_backfill_cursor(&self.name, Some(&cursor))
                .await?;
            progress(&cursor, looked_at);
            if !page.truncated {
                break;
            }
        }
        self.cache.save_backfill_cursor(&self.name, None).await?;
        Ok((cursor, looked_at))
    }

    /// The mirror's keys after `after` up to `last`: a key it does not list needs no HEAD to
    /// know it must be copied (most keys, on a new mirror).
    async fn mirror_keys(
        &self,
        after: Option<&str>,
        last: &str,
    ) -> Result<HashSet<String>, BackfillError> {
        let mut keys = HashSet::new();
        let mut from = after.map(str::to_owned);
        loop {
            let page = self
                .mirror
                .list("", from.as_deref(), PAGE)
                .await
                .map_err(|e| store_failed("listing the mirror", e))?;
            let end = page.objects.last().map(|(key, _)| key.clone());
            keys.extend(
                page.objects
                    .into_iter()
                    .map(|(key, _)| key)
                    .filter(|key| key.as_str() <= last),
            );
            match end {
                Some(end) if page.truncated && end.as_str() < last => from = Some(end),
                _ => return Ok(keys),
            }
        }
    }

    /// Copies what the mirror lacks of `key`, holding its copier lease meanwhile; `there`:
    /// the mirror listed the key.
    async fn backfill_key(&self, key: String, there: bool) -> Result<Copied, BackfillError> {
        // A key the service cannot name was not written through it.
        let Ok(blob_key) = BlobKey::parse(key.clone()) else {
            return Ok(Copied::default());
        };
        let token = UploadLease::new_token();
        let mut wait = Duration::from_millis(20);
        while !self
            .cache
            .hold_mirror_key(&self.name, &key, &token, HOLD)
            .await?
        {
            // A copier is copying the key: it takes one object's time.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
        let copied = if self.histories {
            self.copy_history(&blob_key).await
        } else {
            self.copy_newest(&blob_key, there).await
        };
        self.cache
            .release_mirror_key(&self.name, &key, &token)
            .await?;
        copied.map_err(|e| store_failed(&format!("copying {key}"), e))
    }

    /// Copies the primary's object of `key` unless the mirror has that version or a newer one
    /// (`listed`: the mirror listed the key, so it may).
    async fn copy_newest(&self, key: &BlobKey, listed: bool) -> Result<Copied, StoreError> {
        let Some(object) = self.primary.open(key).await? else {
            return Ok(Copied::default()); // deleted since the listing: the copiers carry it
        };
        // Not listed: absent then. A copier may have copied it since, but what is written
        // here, read under the lease, is the primary's newest: never a step back.
        let there = if listed {
            self.mirror.describe(key).await?
        } else {
            None
        };
        if there.is_some_and(|there| there.version >= object.version) {
            return Ok(Copied::default());
        }
        let blob = object.read_all().await?;
        self.paced().await;
        self.mirror.put(key, &blob).await?;
        Ok(Copied {
            objects: 1,
            versions: 1,
        })
    }

    /// Copies the versions of `key` the mirror lacks, oldest first; from the first one it
    /// lacks on, every newer one again, so the newest written is the primary's newest.
    async fn copy_history(&self, key: &BlobKey) -> Result<Copied, StoreError> {
        let wanted = all_versions(self.primary.as_ref(), key).await?;
        let there: HashSet<(u64, bool)> = all_versions(self.mirror.as_ref(), key)
            .await?
            .iter()
            .map(|v| (v.info.version, v.deleted))
            .collect();
        let Some(oldest_missing) = wanted
            .iter()
            .rposition(|v| !there.contains(&(v.info.version, v.deleted)))
        else {
            return Ok(Copied::default());
        };
        let mut copied = Copied {
            objects: 1,
            versions: 0,
        };
        // Oldest first.
        for version in wanted[..=oldest_missing].iter().rev() {
            self.paced().await;
            if version.deleted {
                self.mirror.delete(key, version.info.version).await?;
            } else {
                let Some(object) = self.primary.open_version(key, version.info.version).await?
                else {
                    continue; // removed from the primary since it was listed
                };
                self.mirror.put(key, &object.read_all().await?).await?;
            }
            copied.versions += 1;
        }
        Ok(copied)
    }

    /// Waits for the next write's turn under `pace.per_second`.
    async fn paced(&self) {
        let Some(per_second) = self.pace.per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let turn = {
            let mut next = self.next_write.lock().await;
            let now = tokio::time::Instant::now();
            let turn = (*next).max(now);
            *next = turn + Duration::from_secs_f64(1.0 / per_second);
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

pub(super) fn store_failed(doing: &str, error: StoreError) -> BackfillError {
    BackfillError::Store(format!("{doing}: {error}"))
}
