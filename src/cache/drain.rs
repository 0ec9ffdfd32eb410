//! The worker's side of the cache: upload leases, marking a version clean, dead letters, and
//! finding dirty keys that nobody drains. Every script here may run when Redis is full
//! (`allow-oom`), because draining is what frees memory.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use super::{
    BlobCache, CacheError, DEAD_LETTERS, DIRTY_BY_KEY, DIRTY_SET, LEASE_PREFIX, STATS, lease_key,
    now_ms, record_key,
};
use crate::domain::BlobKey;

static FINISH_UPLOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("upload_lease.lua"),
        include_str!("mark_dirty.lua"),
        include_str!("finish_upload.lua")
    ))
});
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("upload_lease.lua"),
        include_str!("lease.lua")
    ))
});
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("upload_lease.lua"),
        include_str!("dead_letter.lua")
    ))
});
static ORPHANS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("upload_lease.lua"),
        include_str!("orphans.lua")
    ))
});

/// Outcome of [`BlobCache::finish_upload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Clean,
    Newer,
    Gone,
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

/// A key the worker gave up on, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DeadLetter {
    pub key: String,
    pub version: u64,
    pub error: String,
    /// Unix time in milliseconds.
    pub failed_at_ms: u64,
}

impl BlobCache {
    async fn lease(
        &self,
        key: &BlobKey,
        token: &str,
        op: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let held: i64 = LEASE
            .key(lease_key(key))
            .arg(token)
            .arg(op)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(held == 1)
    }

    /// Takes the upload lease of `key` for `ttl`, unless another worker holds it.
    pub async fn claim_lease(
        &self,
        key: &BlobKey,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.lease(key, token, "claim", ttl).await
    }

    /// Extends a lease this worker holds; false when it was lost.
    pub async fn renew_lease(
        &self,
        key: &BlobKey,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.lease(key, token, "renew", ttl).await
    }

    pub async fn release_lease(&self, key: &BlobKey, token: &str) -> Result<(), CacheError> {
        self.lease(key, token, "release", Duration::ZERO).await?;
        Ok(())
    }

    /// Marks `version` of `key` as stored in S3, if it is still the newest; see [`Finish`].
    #[tracing::instrument(skip_all, fields(%key, version))]
    pub async fn finish_upload(
        &self,
        key: &BlobKey,
        token: &str,
        version: u64,
        ttl: Duration,
    ) -> Result<Finish, CacheError> {
        let outcome: String = FINISH_UPLOAD
            .key(record_key(key))
            .key(lease_key(key))
            .key(DIRTY_SET)
            .key(STATS)
            .key(DIRTY_BY_KEY)
            .arg(token)
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

    /// Counts a failed S3 write (for `/metrics`); best effort.
    pub async fn count_upload_failure(&self) {
        let _: Result<i64, _> = self.conn().hincr(STATS, "upload_failures", 1).await;
    }

    /// Drain counters shared by all workers.
    pub async fn stats(&self) -> Result<DrainStats, CacheError> {
        let (uploads, upload_failures): (Option<u64>, Option<u64>) = self
            .conn()
            .hmget(STATS, &["uploads", "upload_failures"])
            .await?;
        Ok(DrainStats {
            uploads: uploads.unwrap_or(0),
            upload_failures: upload_failures.unwrap_or(0),
        })
    }

    /// Parks `key` in the dead letters and releases its lease. The record stays dirty.
    pub async fn dead_letter(
        &self,
        key: &BlobKey,
        token: &str,
        version: u64,
        error: &str,
    ) -> Result<(), CacheError> {
        let record = DeadLetter {
            key: key.to_string(),
            version,
            error: error.to_owned(),
            failed_at_ms: now_ms(),
        };
        let json =
            serde_json::to_string(&record).map_err(|e| CacheError::Protocol(e.to_string()))?;
        let _: i64 = DEAD_LETTER
            .key(DEAD_LETTERS)
            .key(lease_key(key))
            .arg(key.as_str())
            .arg(json)
            .arg(token)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Up to `limit` dead letters, and how many there are in all.
    pub async fn dead_letters(&self, limit: usize) -> Result<(u64, Vec<DeadLetter>), CacheError> {
        let mut conn = self.conn();
        let count: u64 = conn.hlen(DEAD_LETTERS).await?;
        let (_, raw): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
            .arg(DEAD_LETTERS)
            .arg(0)
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let mut letters: Vec<DeadLetter> = raw
            .into_iter()
            .filter_map(|(_, json)| serde_json::from_str(&json).ok())
            .take(limit)
            .collect();
        letters.sort_by_key(|l| l.failed_at_ms);
        Ok((count, letters))
    }

    /// Removes `key` from the dead letters; true if it was there.
    pub async fn forget_dead_letter(&self, key: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.conn().hdel(DEAD_LETTERS, key).await?;
        Ok(removed == 1)
    }

    /// Keys dirty for longer than `age` that no worker is uploading and that are not
    /// dead-lettered: their job was lost (a crash between the cache write and the enqueue, a
    /// full Redis refusing the job) or their worker died.
    pub async fn orphaned_dirty_keys(
        &self,
        age: Duration,
        limit: usize,
    ) -> Result<Vec<String>, CacheError> {
        let cutoff = now_ms().saturating_sub(age.as_millis() as u64);
        Ok(ORPHANS
            .key(DIRTY_SET)
            .key(DEAD_LETTERS)
            .arg(cutoff)
            .arg(limit)
            .arg(LEASE_PREFIX)
            .invoke_async(&mut self.conn())
            .await?)
    }
}

static WRITE_THROUGH_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("next_version.lua"),
        include_str!("upload_lease.lua"),
        include_str!("write_through_begin.lua")
    ))
});
static WRITE_THROUGH_FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "#!lua flags=allow-oom\n",
        include_str!("../jobs/queue_job.lua"),
        include_str!("upload_lease.lua"),
        include_str!("mark_dirty.lua"),
        include_str!("write_through_finish.lua")
    ))
});

/// Outcome of [`BlobCache::finish_write_through`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteThrough {
    /// S3 holds the newest version: ours. Any older cached record is gone.
    Stored,
    /// A newer write arrived while ours was uploading; it stays (and is queued if dirty).
    Newer,
    /// The lease expired mid-upload: another writer may have stored the key meanwhile.
    Lost,
}

impl BlobCache {
    /// Takes `key`'s upload lease for a write-through and returns its version, or `None` while
    /// a worker or another write-through holds the lease.
    pub async fn begin_write_through(
        &self,
        key: &BlobKey,
        token: &str,
        ttl: Duration,
    ) -> Result<Option<u64>, CacheError> {
        let version: Option<String> = WRITE_THROUGH_BEGIN
            .key(lease_key(key))
            .key(super::VERSION_KEY)
            .arg(token)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn())
            .await?;
        version.as_deref().map(super::parse_version).transpose()
    }

    /// Records that S3 now holds `version` of `key`, written through; releases the lease.
    pub async fn finish_write_through(
        &self,
        key: &BlobKey,
        token: &str,
        version: u64,
        queue: &crate::jobs::QueueKeys,
    ) -> Result<WriteThrough, CacheError> {
        let mut invocation = WRITE_THROUGH_FINISH.prepare_invoke();
        invocation
            .key(record_key(key))
            .key(lease_key(key))
            .key(DIRTY_SET)
            .key(DIRTY_BY_KEY)
            .key(DEAD_LETTERS);
        for queue_key in queue.as_array() {
            invocation.key(queue_key);
        }
        let outcome: String = invocation
            .arg(token)
            .arg(version.to_string())
            .arg(key.as_str())
            .arg(crate::jobs::queue::new_job_id())
            .invoke_async(&mut self.conn())
            .await?;
        match outcome.as_str() {
            "stored" => Ok(WriteThrough::Stored),
            "newer" => Ok(WriteThrough::Newer),
            "lost" => Ok(WriteThrough::Lost),
            other => Err(CacheError::Protocol(format!(
                "unexpected write-through outcome {other:?}"
            ))),
        }
    }
}
