//! Upload leases: only the holder of a key's lease writes that key to S3, so two uploads of one
//! key never race. A lease is short and renewed while its holder works, so a killed holder's
//! key is free again within seconds.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::Script;

use super::{ALLOW_OOM, BlobCache, CacheError, UPLOAD_LEASE_LUA, lease_key};
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
        let lease = Self::taken(cache, key, Self::new_token(), ttl);
        Ok(cache
            .lease(key, &lease.token, "claim", ttl)
            .await?
            .then_some(lease))
    }

    /// A lease that a script took with `token` (the write-through's first step).
    pub fn taken(cache: &BlobCache, key: &BlobKey, token: String, ttl: Duration) -> Self {
        Self {
            cache: cache.clone(),
            key: key.clone(),
            token,
            ttl,
            lost: AtomicBool::new(false),
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
                if let Ok(false) = self
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
    /// Runs `lease.lua`: claims, renews or releases; true when the caller holds (or, for
    /// release, held) the lease.
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
}
