//! Dead letters: keys the worker gave up on. They stay dirty (and readable) in the cache and
//! the sweep skips them, until `replay-dead-letters` or a new write of the key.

use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use super::layout::scripts;
use super::{BlobCache, CacheError, UploadLease, now_ms};
use crate::domain::BlobKey;

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
    /// Parks `key` in the dead letters and releases its lease. The record stays dirty.
    pub async fn dead_letter(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        version: u64,
        error: &str,
    ) -> Result<(), CacheError> {
        self.park(key.as_str(), lease.token(), version, error).await
    }

    /// Parks a key that this version's key rules refuse (written under an older version's),
    /// which no lease was taken for: it cannot be drained until an operator decides.
    pub async fn dead_letter_invalid_key(
        &self,
        key: &str,
        version: u64,
        error: &str,
    ) -> Result<(), CacheError> {
        // No token is ever empty, so this releases no one's lease.
        self.park(key, "", version, error).await
    }

    async fn park(
        &self,
        key: &str,
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
        let keys = self.keys_of(key);
        let lease_key = keys.lease(key);
        let _: i64 = scripts::DeadLetter {
            dead: &keys.dead,
            lease: &lease_key,
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            key,
            reason: &json,
            token,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(())
    }

    /// Up to `limit` dead letters (the oldest failures first), and how many there are in all
    /// shards.
    pub async fn dead_letters(&self, limit: usize) -> Result<(u64, Vec<DeadLetter>), CacheError> {
        let mut conn = self.conn();
        let (mut count, mut letters) = (0, Vec::new());
        for shard in self.every_shard() {
            count += conn.hlen::<_, u64>(&shard.dead).await?;
            let (_, raw): (u64, Vec<(String, String)>) = redis::cmd("HSCAN")
                .arg(&shard.dead)
                .arg(0)
                .arg("COUNT")
                .arg(limit)
                .query_async(&mut conn)
                .await?;
            letters.extend(
                raw.into_iter()
                    .filter_map(|(_, json)| serde_json::from_str::<DeadLetter>(&json).ok()),
            );
        }
        letters.sort_by_key(|l| l.failed_at_ms);
        letters.truncate(limit);
        Ok((count, letters))
    }

    /// Drops the dead-lettered `key` from the cache altogether, if its record is still at
    /// `version` (an operator moved its blob under another key); true if it was dropped.
    pub async fn drop_dead_letter(&self, key: &str, version: u64) -> Result<bool, CacheError> {
        let keys = self.keys_of(key);
        let record = keys.record(key);
        let dropped: i64 = scripts::DropDeadLetter {
            record: &record,
            dirty: &keys.dirty,
            dirty_by_key: &keys.dirty_by_key,
            dead: &keys.dead,
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            key,
            version,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok(dropped == 1)
    }

    /// Whether `key` is a dead letter.
    pub async fn is_dead_letter(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.conn().hexists(&self.keys_of(key).dead, key).await?)
    }

    /// Removes `key` from the dead letters; true if it was there.
    pub async fn forget_dead_letter(&self, key: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.conn().hdel(&self.keys_of(key).dead, key).await?;
        Ok(removed == 1)
    }
}
