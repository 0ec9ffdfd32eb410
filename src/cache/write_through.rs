//! The two Redis steps of a write-through (a blob too large for the cache, streamed straight to
//! S3): take the key's lease and a version before the upload, settle the cache after it.
//! Both may run when Redis is full: they store no blob bytes, and the second frees memory.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{
    ALLOW_OOM, BlobCache, CacheError, MARK_DIRTY_LUA, NEXT_VERSION_LUA, UPLOAD_LEASE_LUA,
    UploadLease, parse_version,
};
use crate::domain::BlobKey;
use crate::queue::{QUEUE_JOB_LUA, new_job_id};

static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            ALLOW_OOM,
            NEXT_VERSION_LUA,
            UPLOAD_LEASE_LUA,
            include_str!("write_through_begin.lua"),
        ]
        .concat(),
    )
});
static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        &[
            ALLOW_OOM,
            QUEUE_JOB_LUA,
            UPLOAD_LEASE_LUA,
            MARK_DIRTY_LUA,
            include_str!("write_through_finish.lua"),
        ]
        .concat(),
    )
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
    /// Takes `key`'s upload lease for a write-through and hands out its version, or `None`
    /// while a worker or another write-through holds the lease.
    pub async fn begin_write_through(
        &self,
        key: &BlobKey,
        ttl: Duration,
    ) -> Result<Option<(UploadLease, u64)>, CacheError> {
        let token = UploadLease::new_token();
        let names = self.names(key.as_str());
        let version: Option<String> = BEGIN
            .key(names.lease(key.as_str()))
            .key(&names.version)
            .arg(&token)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn())
            .await?;
        let Some(version) = version else {
            return Ok(None);
        };
        let lease = UploadLease::taken(self, key, token, ttl);
        Ok(Some((lease, parse_version(&version)?)))
    }

    /// Records that S3 now holds `version` of `key`, written through; releases the lease.
    pub async fn finish_write_through(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        version: u64,
    ) -> Result<WriteThrough, CacheError> {
        let names = self.names(key.as_str());
        let mut invocation = FINISH.prepare_invoke();
        invocation
            .key(names.record(key.as_str()))
            .key(names.lease(key.as_str()))
            .key(&names.dirty)
            .key(&names.dirty_by_key)
            .key(&names.dead);
        for queue_key in names.queue.as_array() {
            invocation.key(queue_key);
        }
        let outcome: String = invocation
            .arg(lease.token())
            .arg(version.to_string())
            .arg(key.as_str())
            .arg(new_job_id())
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
