//! The drain's side: upload leases (only the holder of a key's lease writes that key to S3,
//! so two uploads of one key never race; a lease is short and renewed while its holder works,
//! so a killed holder's key is free again within seconds), marking a version clean once S3
//! has it, and the counters every worker adds to.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands as _;

use super::layout::scripts::{FinishUpload, Lease};
use super::layout::{record, stats};
use super::mirrors::OwingMirrors as _;
use super::{BlobCache, CacheError};
use crate::domain::BlobKey;

/// A lease held on one key. [`UploadLease::hold_while`] renews it for as long as the work it
/// guards runs; the holder then releases it, or a script that finishes the upload does.
pub struct UploadLease {
    cache: BlobCache,
    key: BlobKey,
    token: String,
    ttl: Duration,
    /// A renewal found the lease gone (it expired while Redis or this process stalled):
    /// another holder may have written the key meanwhile.
    lost: AtomicBool,
    /// Size of the key's cached bytes when the lease was claimed (0 for a lease a script took).
    claimed_size: u64,
}

impl UploadLease {
    /// A token no other holder uses.
    pub fn new_token() -> String {
        format!("{:032x}", rand::random::<u128>())
    }

    /// Takes the lease of `key` for `ttl`; `None` while someone else holds it.
    pub async fn claim(
        cache: &BlobCache,
        key: &BlobKey,
        ttl: Duration,
    ) -> Result<Option<Self>, CacheError> {
        let mut lease = Self::taken(cache, key, Self::new_token(), ttl);
        let claimed = cache.lease(key, &lease.token, "claim", ttl).await?;
        lease.claimed_size = claimed.saturating_sub(1);
        Ok((claimed > 0).then_some(lease))
    }

    /// The size of the key's cached bytes when the lease was claimed, read by the claim itself.
    pub fn claimed_size(&self) -> u64 {
        self.claimed_size
    }

    /// A lease that a script took with `token` (the write-through's first step).
    pub fn taken(cache: &BlobCache, key: &BlobKey, token: String, ttl: Duration) -> Self {
        Self {
            cache: cache.clone(),
            key: key.clone(),
            token,
            ttl,
            lost: AtomicBool::new(false),
            claimed_size: 0,
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether a renewal found the lease gone.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Runs `work`, renewing the lease every third of its lifetime until `work` ends.
    pub async fn hold_while<T>(&self, work: impl Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(self.ttl / 3).await;
                if let Ok(0) = self
                    .cache
                    .lease(&self.key, &self.token, "renew", self.ttl)
                    .await
                {
                    tracing::warn!(key = %self.key, "upload lease lost");
                    self.lost.store(true, Ordering::Relaxed);
                }
            }
        };
        tokio::select! {
            result = work => result,
            _ = renew => unreachable!("the renewal loop never ends"),
        }
    }

    /// Gives the key back, if this holder still has it.
    pub async fn release(&self) -> Result<(), CacheError> {
        self.cache
            .lease(&self.key, &self.token, "release", Duration::ZERO)
            .await?;
        Ok(())
    }
}

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
    /// Dirty keys the sweep found with no job on its way, and drained itself.
    pub orphans: u64,
}

impl BlobCache {
    /// Runs `lease.lua`: claims, renews or releases; non-zero when the caller holds (or, for
    /// release, held) the lease (a claim: the size of the key's bytes + 1).
    async fn lease(
        &self,
        key: &BlobKey,
        token: &str,
        op: &str,
        ttl: Duration,
    ) -> Result<u64, CacheError> {
        let keys = self.keys_of(key.as_str());
        let (lease, record) = (keys.lease(key.as_str()), keys.record(key.as_str()));
        let held: u64 = Lease {
            lease: &lease,
            record: &record,
            token,
            op,
            ttl_ms: (ttl.as_millis() as u64).max(1),
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(held)
    }

    /// Marks `version` of `key` as stored in S3, if it is still the newest; see [`Finish`].
    #[tracing::instrument(name = "redis.finish_upload", skip_all,
        fields(%key, version, otel.kind = "client"))]
    pub async fn finish_upload(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        version: u64,
        ttl: Duration,
    ) -> Result<Finish, CacheError> {
        let keys = self.keys_of(key.as_str());
        let (record, lease_key) = (keys.record(key.as_str()), keys.lease(key.as_str()));
        let outcome: String = FinishUpload {
            record: &record,
            lease: &lease_key,
            dirty: &keys.dirty,
            stats: &keys.stats,
            dirty_by_key: &keys.dirty_by_key,
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            token: lease.token(),
            version,
            ttl_secs: ttl.as_secs(),
            key: key.as_str(),
        }
        .invocation()
        .owing_mirrors(self.mirror_keys(keys))
        .invoke_async(&mut self.conn())
        .await?;
        match outcome.as_str() {
            record::CLEAN => Ok(Finish::Clean),
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
        let counters = &self.keys_of(key.as_str()).stats;
        let _: Result<i64, _> = self.conn().hincr(counters, stats::UPLOAD_FAILURES, 1).await;
    }

    /// Counts dirty keys the sweep found with no job on its way; best effort.
    pub async fn count_orphans(&self, keys: &[String]) {
        for key in keys {
            let counters = &self.keys_of(key).stats;
            let _: Result<i64, _> = self.conn().hincr(counters, stats::ORPHANS, 1).await;
        }
    }

    /// Drain counters shared by all workers (every shard's, added up).
    pub async fn stats(&self) -> Result<DrainStats, CacheError> {
        let counters = self
            .ask_every_shard(async |mut conn, shard| {
                conn.hmget::<_, _, (Option<u64>, Option<u64>, Option<u64>)>(
                    &shard.stats,
                    &[stats::UPLOADS, stats::UPLOAD_FAILURES, stats::ORPHANS],
                )
                .await
            })
            .await?;
        let mut total = DrainStats::default();
        for (uploads, upload_failures, orphans) in counters {
            total.uploads += uploads.unwrap_or(0);
            total.upload_failures += upload_failures.unwrap_or(0);
            total.orphans += orphans.unwrap_or(0);
        }
        Ok(total)
    }
}
