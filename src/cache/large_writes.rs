//! The two Redis steps of a write-through (a blob too large for the cache, streamed straight
//! to S3): take the key's lease and a version before the upload, settle the cache after it.
//! Both may run when Redis is full: they store no blob bytes, and the second frees memory.

use std::time::Duration;

use super::layout::scripts::{WriteThroughBegin, WriteThroughFinish};
use super::mirrors::OwingMirrors as _;
use super::{BlobCache, CacheError, UploadLease, parse_version};
use crate::domain::BlobKey;
use crate::queue::new_job_id;

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
        let keys = self.keys_of(key.as_str());
        let lease = keys.lease(key.as_str());
        let version: Option<String> = WriteThroughBegin {
            lease: &lease,
            version_counter: &keys.version,
            token: &token,
            ttl_ms: (ttl.as_millis() as u64).max(1),
        }
        .invocation()
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
        let keys = self.keys_of(key.as_str());
        let (record, lease_key) = (keys.record(key.as_str()), keys.lease(key.as_str()));
        let outcome: String = WriteThroughFinish {
            record: &record,
            lease: &lease_key,
            dirty: &keys.dirty,
            dirty_by_key: &keys.dirty_by_key,
            dead: &keys.dead,
            queue_data: &keys.queue.data,
            queue_meta: &keys.queue.meta,
            queue_active: &keys.queue.active,
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            token: lease.token(),
            version,
            key: key.as_str(),
            job_id: &new_job_id(),
        }
        .invocation()
        .owing_mirrors(self.mirror_keys(keys))
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
