//! `list`: merges the keys still only in Redis with S3's listing, so a write acknowledged a
//! moment ago is listed at once and a deleted key is not, in one stable order (by key, as S3
//! sorts).

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::StreamExt as _;
use serde::Serialize;

use super::{BlobService, ServiceError};
use crate::domain::BlobKey;
use crate::store::{Listing, ObjectInfo, StoreError};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Item {
    pub key: String,
    pub size: u64,
    pub extension: String,
    pub version: u64,
    /// Whether S3 holds this version already.
    pub persisted: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass back as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// The opaque cursor: the last key a page considered.
fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// The key a cursor this service handed out stands for.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()
}

/// The first `limit` keys of the union of S3's page and the dirty keys, and whether more may
/// follow. Each source gave its first `limit` keys after the cursor, so nothing smaller can be
/// missing from the union.
fn merge_keys(s3: &Listing, dirty: Vec<String>, limit: usize) -> (Vec<String>, bool) {
    let dirty_may_have_more = dirty.len() == limit;
    let mut keys: BTreeSet<String> = s3.objects.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(dirty);
    let more = s3.truncated || dirty_may_have_more || keys.len() > limit;
    (keys.into_iter().take(limit).collect(), more)
}

impl BlobService {
    /// One page of keys starting with `prefix`, after the key `after`.
    pub async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, ServiceError> {
        // The dirty keys first, S3 after: a key dirty then is in the first answer; a key clean
        // then was in S3 already. Read side by side, a key drained in between could miss both
        // (S3 listed before its upload, the dirty set read after it was marked clean).
        let dirty = self.cache.dirty_keys(prefix, after, limit).await?;
        let s3 = self.store.list(prefix, after, limit).await?;
        let (keys, more) = merge_keys(&s3, dirty, limit);
        let summaries = self.cache.summaries(&keys).await?;
        let sizes: HashMap<&str, u64> = s3.objects.iter().map(|(k, s)| (k.as_str(), *s)).collect();

        let mut items = Vec::with_capacity(keys.len());
        let mut undescribed = Vec::new();
        for (key, summary) in keys.iter().zip(summaries) {
            match summary {
                Some(s) if s.deleted => {} // deleted, even if S3 still has the object
                Some(s) => items.push(Item {
                    key: key.clone(),
                    size: s.size,
                    extension: s.extension,
                    version: s.version,
                    persisted: s.persisted,
                }),
                None => {
                    undescribed.push(items.len());
                    items.push(Item {
                        key: key.clone(),
                        size: sizes.get(key.as_str()).copied().unwrap_or(0),
                        extension: String::new(),
                        version: 0,
                        persisted: true,
                    });
                }
            }
        }
        let gone = self.describe_from_s3(&mut items, undescribed).await?;
        let items = items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, item)| item)
            .collect();
        Ok(Page {
            items,
            next_cursor: more
                .then(|| keys.last().map(|k| encode_cursor(k)))
                .flatten(),
        })
    }

    /// Fills in the extension and version of the items only S3 has (they are in the object's
    /// metadata); returns the indexes of those deleted since the listing.
    async fn describe_from_s3(
        &self,
        items: &mut [Item],
        undescribed: Vec<usize>,
    ) -> Result<BTreeSet<usize>, ServiceError> {
        type Described = (usize, Result<Option<ObjectInfo>, StoreError>);
        let described: Vec<Described> = futures::stream::iter(undescribed)
            .map(|i| {
                let key = items[i].key.clone();
                async move {
                    let result = match BlobKey::parse(key) {
                        Ok(key) => self.store.describe(&key).await,
                        Err(_) => Ok(Some(ObjectInfo {
                            extension: String::new(),
                            version: 0,
                        })),
                    };
                    (i, result)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut gone = BTreeSet::new();
        for (i, result) in described {
            match result? {
                Some(info) => {
                    items[i].extension = info.extension;
                    items[i].version = info.version;
                }
                None => {
                    gone.insert(i);
                }
            }
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(keys: &[&str], truncated: bool) -> Listing {
        Listing {
            objects: keys.iter().map(|k| (k.to_string(), 1)).collect(),
            truncated,
        }
    }

    fn dirty(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn merge_interleaves_both_sources_in_key_order_without_repeats() {
        let (keys, more) = merge_keys(&s3(&["a", "c"], false), dirty(&["b", "c"]), 10);
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(!more);
    }

    #[test]
    fn merge_takes_the_first_limit_keys_and_says_more_follow() {
        let (keys, more) = merge_keys(&s3(&["a", "d"], false), dirty(&["b", "c"]), 3);
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(more);
    }

    #[test]
    fn merge_says_more_follow_when_either_source_was_cut() {
        assert!(merge_keys(&s3(&["a"], true), dirty(&[]), 5).1);
        assert!(merge_keys(&s3(&[], false), dirty(&["a", "b"]), 2).1);
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor("a/ü")).as_deref(), Some("a/ü"));
        assert_eq!(decode_cursor("!!"), None);
    }
}
