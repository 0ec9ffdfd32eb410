//! What a back-fill of a mirror store keeps in Redis: the lease of the key it copies (the
//! copiers' own, so a copier and the back-fill never write one key at once) and its cursor,
//! so a killed back-fill resumes where it stopped.

use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::scripts::{MirrorHold, MirrorRelease};
use super::{BlobCache, CacheError};

/// Where a back-fill stands: the last key done (in the primary store's key order) and what it
/// copied so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillCursor {
    pub after: Option<String>,
    pub objects: u64,
    pub versions: u64,
}

impl BlobCache {
    /// Takes `key`'s copier lease for `mirror` as `token`, for `ttl`; false while a copier
    /// holds it.
    pub async fn hold_mirror_key(
        &self,
        mirror: &str,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let keys = self.keys_of(key).mirror(mirror);
        let held: i64 = MirrorHold {
            lease: &keys.lease(key),
            token,
            ttl_ms: ttl.as_millis() as u64,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(held == 1)
    }

    /// Releases what [`Self::hold_mirror_key`] took; a copy turned away meanwhile is due now.
    pub async fn release_mirror_key(
        &self,
        mirror: &str,
        key: &str,
        token: &str,
    ) -> Result<(), CacheError> {
        let keys = self.keys_of(key).mirror(mirror);
        let _: i64 = MirrorRelease {
            lease: &keys.lease(key),
            want: &keys.want,
            due: &keys.due,
            token,
            key,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(())
    }

    /// Whether `mirror` is owed a newer version of `key` (a copier will copy it).
    pub async fn mirror_owed(&self, mirror: &str, key: &str) -> Result<bool, CacheError> {
        let want = self.keys_of(key).mirror(mirror).want;
        Ok(self.conn().hexists(want, key).await?)
    }

    /// The hash that holds `mirror`'s back-fill cursor (in the first shard).
    fn backfill_key(&self, mirror: &str) -> String {
        self.every_shard()[0].mirror(mirror).backfill
    }

    /// Where the last back-fill of `mirror` stopped (the default: at the start).
    pub async fn backfill_cursor(&self, mirror: &str) -> Result<BackfillCursor, CacheError> {
        let (after, objects, versions): (Option<String>, Option<u64>, Option<u64>) = self
            .conn()
            .hmget(self.backfill_key(mirror), &["after", "objects", "versions"])
            .await?;
        Ok(BackfillCursor {
            after,
            objects: objects.unwrap_or(0),
            versions: versions.unwrap_or(0),
        })
    }

    /// Records where a back-fill of `mirror` stands; `None`: it finished (the next one
    /// starts over).
    pub async fn save_backfill_cursor(
        &self,
        mirror: &str,
        cursor: Option<&BackfillCursor>,
    ) -> Result<(), CacheError> {
        let key = self.backfill_key(mirror);
        let mut conn = self.conn();
        match cursor {
            None => conn.del::<_, ()>(key).await?,
            Some(cursor) => {
                let fields = [
                    ("after", cursor.after.clone().unwrap_or_default()),
                    ("objects", cursor.objects.to_string()),
                    ("versions", cursor.versions.to_string()),
                ];
                conn.hset_multiple::<_, _, _, ()>(key, &fields).await?
            }
        }
        Ok(())
    }
}
