//! The dirty backlog: marking a version clean once S3 has it, the keys still dirty (in key
//! order for listings, and those nobody drains for the sweep), and the counters every worker
//! adds to.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands as _, Script};

use super::{
    ALLOW_OOM, BlobCache, CacheError, MARK_DIRTY_LUA, Names, UPLOAD_LEASE_LUA, UploadLease, now_ms,
};
use crate::domain::BlobKey;
use crate::redis_link::RedisLink;

// allow-oom: marking blobs clean is what lets a full Redis evict them again.
static FINISH_UPLOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            ALLOW_OOM,
            UPLOAD_LEASE_LUA,
            MARK_DIRTY_LUA,
            include_str!("finish_upload.lua"),
        ]
        .concat(),
    )
});
static ORPHANS: LazyLock<Script> =
    LazyLock::new(|| Script::new(&[UPLOAD_LEASE_LUA, include_str!("orphans.lua")].concat()));

/// Outcome of [`BlobCache::finish_upload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// S3 holds the newest version; the record is clean and the lease released.
    Clean,
    /// A newer version arrived meanwhile: store again (the lease is kept).
    Newer,
    /// The record left the cache.
    Gone,
    /// The lease expired mid-upload and another holder may have stored a newer version before
    /// ours landed: the key is dirty again, to be re-queued.
    Lost,
}

/// Counters every worker adds to.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainStats {
    /// S3 writes (stores and deletes) that succeeded.
    pub uploads: u64,
    /// S3 writes that failed (and were retried or dead-lettered).
    pub upload_failures: u64,
}

impl BlobCache {
    /// The size of `key`'s cached bytes (0 for a delete marker or no record), without them.
    pub async fn blob_size(&self, key: &BlobKey) -> Result<u64, CacheError> {
        Ok(redis::cmd("HSTRLEN")
            .arg(self.names(key.as_str()).record(key.as_str()))
            .arg("d")
            .query_async(&mut self.conn())
            .await?)
    }

    /// Marks `version` of `key` as stored in S3, if it is still the newest; see [`Finish`].
    #[tracing::instrument(skip_all, fields(%key, version))]
    pub async fn finish_upload(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        version: u64,
        ttl: Duration,
    ) -> Result<Finish, CacheError> {
        let names = self.names(key.as_str());
        let outcome: String = FINISH_UPLOAD
            .key(names.record(key.as_str()))
            .key(names.lease(key.as_str()))
            .key(&names.dirty)
            .key(&names.stats)
            .key(&names.dirty_by_key)
            .arg(lease.token())
            .arg(version.to_string())
            .arg(ttl.as_secs())
            .arg(key.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        match outcome.as_str() {
            "clean" => Ok(Finish::Clean),
            "newer" => Ok(Finish::Newer),
            "gone" => Ok(Finish::Gone),
            "lost" => Ok(Finish::Lost),
            other => Err(CacheError::Protocol(format!(
                "finish_upload returned {other:?}"
            ))),
        }
    }

    /// Counts a failed S3 write of `key` (for `/metrics`); best effort.
    pub async fn count_upload_failure(&self, key: &BlobKey) {
        let stats = &self.names(key.as_str()).stats;
        let _: Result<i64, _> = self.conn().hincr(stats, "upload_failures", 1).await;
    }

    /// `ask`'s answer from every shard, asked all at once: in a cluster, the round trips run
    /// side by side, not in a row.
    async fn ask_every_shard<T>(
        &self,
        ask: impl AsyncFn(RedisLink, &Names) -> redis::RedisResult<T>,
    ) -> Result<Vec<T>, CacheError> {
        let asked = self
            .every_shard()
            .iter()
            .map(|names| ask(self.conn(), names));
        Ok(futures::future::try_join_all(asked).await?)
    }

    /// Drain counters shared by all workers (every shard's, added up).
    pub async fn stats(&self) -> Result<DrainStats, CacheError> {
        let counters = self
            .ask_every_shard(async |mut conn, names| {
                conn.hmget::<_, _, (Option<u64>, Option<u64>)>(
                    &names.stats,
                    &["uploads", "upload_failures"],
                )
                .await
            })
            .await?;
        let mut total = DrainStats::default();
        for (uploads, upload_failures) in counters {
            total.uploads += uploads.unwrap_or(0);
            total.upload_failures += upload_failures.unwrap_or(0);
        }
        Ok(total)
    }

    /// Up to `limit` dirty keys starting with `prefix`, after `after`, in key order (every
    /// shard's first `limit`, merged).
    pub async fn dirty_keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let (min, max) = lex_range(prefix, after);
        let mut keys: Vec<String> = self
            .ask_every_shard(async |mut conn, names| {
                redis::cmd("ZRANGEBYLEX")
                    .arg(&names.dirty_by_key)
                    .arg(&min)
                    .arg(&max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await?
            .into_iter()
            .flatten()
            .collect();
        keys.sort_unstable();
        keys.truncate(limit);
        Ok(keys)
    }

    /// Number of records not yet reflected in S3.
    pub async fn dirty_count(&self) -> Result<u64, CacheError> {
        let counts = self
            .ask_every_shard(async |mut conn, names| conn.zcard::<_, u64>(&names.dirty).await)
            .await?;
        Ok(counts.into_iter().sum())
    }

    /// Age of the oldest dirty record, if any.
    pub async fn oldest_dirty_age(&self) -> Result<Option<Duration>, CacheError> {
        let oldest = self
            .ask_every_shard(async |mut conn, names| {
                conn.zrange_withscores::<_, Vec<(String, f64)>>(&names.dirty, 0, 0)
                    .await
            })
            .await?
            .into_iter()
            .filter_map(|first| first.first().map(|(_, since)| *since))
            .reduce(f64::min);
        let now = now_ms() as f64;
        Ok(oldest.map(|since| Duration::from_millis((now - since).max(0.0) as u64)))
    }

    /// Keys dirty for longer than `age` that no worker is uploading and that are not
    /// dead-lettered: their job was lost (a crash between the cache write and the enqueue, a
    /// full Redis refusing the job) or their worker died. Up to `limit` from each shard.
    pub async fn orphaned_dirty_keys(
        &self,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        let (mut orphans, mut failed) = (Vec::new(), None);
        for names in self.every_shard() {
            // A shard whose master is down (failing over) must not keep the sweep from the
            // others.
            let found: Result<Vec<String>, _> = ORPHANS
                .key(&names.dirty)
                .key(&names.dead)
                .arg(cutoff)
                .arg(limit)
                .arg(&names.lease_prefix)
                .invoke_async(&mut self.conn())
                .await;
            match found {
                Ok(found) => orphans.extend(found),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if orphans.is_empty() => Err(e.into()),
            _ => Ok(orphans),
        }
    }
}

/// The ZRANGEBYLEX bounds of the keys that start with `prefix` and sort after `after`.
fn lex_range(prefix: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let min: Vec<u8> = match after {
        Some(after) if after >= prefix => [b"(", after.as_bytes()].concat(),
        _ => [b"[", prefix.as_bytes()].concat(),
    };
    // 0xFF never occurs in UTF-8, so it bounds every key that starts with `prefix`.
    let max: Vec<u8> = if prefix.is_empty() {
        b"+".to_vec()
    } else {
        [b"[", prefix.as_bytes(), b"\xff"].concat()
    };
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::lex_range;

    #[test]
    fn lex_range_starts_after_the_cursor_within_the_prefix() {
        assert_eq!(lex_range("", None), (b"[".to_vec(), b"+".to_vec()));
        assert_eq!(
            lex_range("a/", Some("a/b")),
            (b"(a/b".to_vec(), b"[a/\xff".to_vec())
        );
        // A cursor before the prefix starts at the prefix.
        assert_eq!(lex_range("b", Some("a")).0, b"[b".to_vec());
    }
}
