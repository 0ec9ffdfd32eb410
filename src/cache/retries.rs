//! Keys S3 keeps failing for. After a few failed attempts in a row, a drain gives its worker
//! slot back and the key waits for its next attempt on a backoff kept in Redis (so it survives
//! the worker that failed), while the rest of the backlog drains: any number of failing keys
//! cost only their own retries. The sweep drains a key once its attempt is due; reaching S3,
//! leaving the cache or going to the dead letters ends its failures.

use std::time::Duration;

use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use super::layout::scripts::RetryLater;
use super::{BlobCache, CacheError, UploadLease, now_ms};
use crate::domain::BlobKey;

/// How a failing key's next attempt is put off: `first` after its first failed turn, doubling
/// with each further one, at most `cap` (each with jitter down to half of it).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

/// A key S3 failed for, waiting for its next attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FailingKey {
    pub key: String,
    /// Turns that failed (each a few attempts in a row).
    pub attempts: u64,
    /// The last failure.
    pub error: String,
    /// Unix time in milliseconds of its first failure.
    pub failing_since_ms: u64,
    /// Unix time in milliseconds when its next attempt is due.
    pub next_attempt_ms: u64,
}

/// Every shard's failing keys: how many, since when, and the longest-failing few.
#[derive(Debug, Clone, Default)]
pub struct Failing {
    pub count: u64,
    /// How long the longest-failing key has failed.
    pub failing_for: Option<Duration>,
    pub sample: Vec<FailingKey>,
}

/// What `failures` holds per key.
#[derive(Deserialize)]
struct Failures {
    attempts: u64,
    error: String,
}

impl BlobCache {
    /// Puts off the next attempt of `key` (by `backoff`, and no sooner than the `asked` delay
    /// S3 asked for) and releases its lease. Returns the turns that failed so far and the
    /// delay.
    pub async fn retry_later(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
        error: &str,
        backoff: Backoff,
        asked: Option<Duration>,
    ) -> Result<(u64, Duration), CacheError> {
        let keys = self.keys_of(key.as_str());
        let lease_key = keys.lease(key.as_str());
        let (attempts, delay_ms): (u64, u64) = RetryLater {
            retry: &keys.retry,
            failing: &keys.failing,
            failures: &keys.failures,
            lease: &lease_key,
            key: key.as_str(),
            error,
            token: lease.token(),
            first_ms: backoff.first.as_millis() as u64,
            cap_ms: backoff.cap.as_millis() as u64,
            jitter: rand::random_range(0..=1000),
            asked_ms: asked.unwrap_or_default().as_millis() as u64,
        }
        .invocation()
        .invoke_async(&mut self.conn())
        .await?;
        Ok((attempts, Duration::from_millis(delay_ms)))
    }

    /// Up to `limit` failing keys of each shard whose next attempt is due. A shard that does
    /// not answer (its master failing over) does not keep the others' keys back.
    pub async fn due_retries(&self, limit: usize) -> Result<Vec<String>, CacheError> {
        let now = now_ms();
        let (mut due, mut failed) = (Vec::new(), None);
        for shard in self.every_shard() {
            let found: Result<Vec<String>, _> = self
                .conn()
                .zrangebyscore_limit(&shard.retry, "-inf", now, 0, limit as isize)
                .await;
            match found {
                Ok(found) => due.extend(found),
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) if due.is_empty() => Err(e.into()),
            _ => Ok(due),
        }
    }

    /// How many keys are failing, since when, and up to `limit` of the longest-failing.
    pub async fn failing(&self, limit: usize) -> Result<Failing, CacheError> {
        let mut conn = self.conn();
        let (mut total, mut oldest) = (Failing::default(), None);
        for shard in self.every_shard() {
            total.count += conn.zcard::<_, u64>(&shard.failing).await?;
            let since: Vec<(String, f64)> = conn
                .zrange_withscores(&shard.failing, 0, limit as isize - 1)
                .await?;
            if since.is_empty() {
                continue;
            }
            let keys: Vec<&str> = since.iter().map(|(key, _)| key.as_str()).collect();
            let failures: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&shard.failures)
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            let due: Vec<Option<f64>> = redis::cmd("ZMSCORE")
                .arg(&shard.retry)
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            for (((key, since), failures), due) in since.into_iter().zip(failures).zip(due) {
                let Failures { attempts, error } = failures
                    .and_then(|json| serde_json::from_str(&json).ok())
                    .unwrap_or(Failures {
                        attempts: 0,
                        error: String::new(),
                    });
                let since = since as u64;
                oldest = Some(oldest.map_or(since, |o: u64| o.min(since)));
                total.sample.push(FailingKey {
                    key,
                    attempts,
                    error,
                    failing_since_ms: since,
                    next_attempt_ms: due.unwrap_or_default() as u64,
                });
            }
        }
        total.failing_for =
            oldest.map(|since| Duration::from_millis(now_ms().saturating_sub(since)));
        total.sample.sort_by_key(|f| f.failing_since_ms);
        total.sample.truncate(limit);
        Ok(total)
    }
}

#[cfg(test)]
#[path = "retries_tests.rs"]
mod tests;
