//! Upload leases: only the holder of a key's lease writes that key to S3, so two uploads of one
//! key never race. A lease is short and renewed while its holder works, so a killed holder's
//! key is free again within seconds.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;

use super::{ALLOW_OOM, BlobCache, CacheError, UPLOAD_LEASE_LUA};
use crate::domain::BlobKey;

// allow-oom: the worker must be able to drain (and so free memory) when Redis is full.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&[ALLOW_OOM, UPLOAD_LEASE_LUA, include_str!("lease.lua")].concat())
});

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
        let names = self.names(key.as_str());
        let held: u64 = LEASE
            .key(names.lease(key.as_str()))
            .key(names.record(key.as_str()))
            .arg(token)
            .arg(op)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(held)
    }
}
