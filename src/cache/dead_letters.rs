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
        let record = DeadLetter {
            key: key.to_string(),
            version,
            error: error.to_owned(),
            failed_at_ms: now_ms(),
        };
        let json =
            serde_json::to_string(&record).map_err(|e| CacheError::Protocol(e.to_string()))?;
        let keys = self.keys_of(key.as_str());
        let lease_key = keys.lease(key.as_str());
        let _: i64 = scripts::DeadLetter {
            dead: &keys.dead,
            lease: &lease_key,
            key: key.as_str(),
            reason: &json,
            token: lease.token(),
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

    /// Removes `key` from the dead letters; true if it was there.
    pub async fn forget_dead_letter(&self, key: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.conn().hdel(&self.keys_of(key).dead, key).await?;
        Ok(removed == 1)
    }
}
