//! What draining one key means: make S3 reflect the newest cached version of the key (store
//! the blob, or delete the object for a delete marker), then mark it clean, without ever
//! leaving S3 older than the last acknowledged write.
//!
//! Safety argument, in short:
//! - Only the holder of a key's upload lease writes it to S3, so two uploads of one key never
//!   race. The lease is short (10 s) and renewed while the upload runs, so a killed worker's
//!   key is free again within seconds.
//! - The holder keeps storing the newest cached version until `finish_upload` confirms that
//!   the version it stored is still the newest (`Finish::Newer` means loop again). A write that
//!   finds its key already dirty therefore needs no job of its own: the holder will pick it up.
//! - A lease lost mid-upload (a stalled worker) marks the key dirty again and re-queues it,
//!   because our late upload may have overwritten a newer object.
//! - A key left dirty with no job (a crash between the cache write and the enqueue, a dead
//!   lease holder, a full Redis refusing the job) is drained by the worker's sweep.
//! - Transient S3 failures are retried without limit (exponential backoff with jitter, capped,
//!   honouring `Retry-After`); permanent ones a few times, then the key is dead-lettered: it
//!   stays dirty in the cache and is never dropped.
//! - Draining is idempotent: a job delivered twice finds the key clean and does nothing.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::cache::{BlobCache, CacheError, Finish, UploadLease};
use crate::domain::{Blob, BlobKey};
use crate::queue::{DrainJob, JobQueue};
use crate::store::{BlobStore, StoreError};

/// How long a lease lives without renewal; renewed every third of it while uploading.
const LEASE_TTL: Duration = Duration::from_secs(10);

/// Attempts for a failure S3 calls permanent (403, a missing bucket...) before the key is
/// dead-lettered.
const PERMANENT_ATTEMPTS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("job names an invalid key: {0}")]
    BadKey(String),
}

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// S3 now reflects the newest version (or the key was already clean, or left the cache).
    Done,
    /// Another worker holds the key's lease and will finish it.
    Busy,
    /// S3 refused permanently; the key is in the dead letters and still dirty in the cache.
    DeadLettered,
}

/// Everything a drain needs; shared by all jobs of a worker process.
#[derive(Clone)]
pub struct Drainer {
    cache: BlobCache,
    store: Arc<dyn BlobStore>,
    queue: JobQueue,
    cache_ttl: Duration,
    /// Longest pause between upload retries.
    max_backoff: Duration,
    /// Bytes of blobs this process may hold at once (read from Redis, not yet in S3), one
    /// permit per byte: many small uploads in flight hide S3's latency, and a few large ones
    /// cannot exhaust memory.
    bytes_in_flight: Arc<Semaphore>,
    max_bytes_in_flight: usize,
    /// Keys drained at once (`BLOBPROXY_WORKER_CONCURRENCY`): a job may name many.
    uploads: Arc<Semaphore>,
}

impl Drainer {
    pub fn new(
        cache: BlobCache,
        store: Arc<dyn BlobStore>,
        queue: JobQueue,
        cache_ttl: Duration,
        max_backoff: Duration,
        max_bytes_in_flight: usize,
        concurrency: usize,
    ) -> Self {
        Self {
            cache,
            store,
            queue,
            cache_ttl,
            max_backoff,
            bytes_in_flight: Arc::new(Semaphore::new(max_bytes_in_flight)),
            max_bytes_in_flight,
            uploads: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Waits until `size` more bytes fit in the budget (a blob larger than the whole budget
    /// waits for all of it: it goes alone).
    async fn reserve(&self, size: u64) -> SemaphorePermit<'_> {
        let wanted = size
            .min(self.max_bytes_in_flight as u64)
            .min(u32::MAX as u64) as u32;
        self.bytes_in_flight
            .acquire_many(wanted)
            .await
            .expect("the budget is never closed")
    }

    /// Drains one key (`version` made it dirty; for the log). See the module docs for why this
    /// never loses a write.
    #[tracing::instrument(skip_all, fields(%key, version = version))]
    pub async fn drain(&self, key: &str, version: u64) -> Result<Drained, DrainError> {
        let key = BlobKey::parse(key.to_owned()).map_err(|e| DrainError::BadKey(e.to_string()))?;
        // At most the process's number of uploads at once, however many keys its jobs name.
        let _slot = self.uploads.acquire().await.expect("never closed");
        let Some(lease) = UploadLease::claim(&self.cache, &key, LEASE_TTL).await? else {
            return Ok(Drained::Busy);
        };
        let result = lease.hold_while(self.store_until_clean(&key, &lease)).await;
        // One line per key at debug level: which worker process drained what (operators
        // following one key; the Swarm test checks that every worker task takes a share).
        if let Ok(Drained::Done) = result {
            tracing::debug!("drained");
        }
        if result.is_err() {
            // Let the rescheduled job (or the sweep) take over at once.
            let _ = lease.release().await;
        }
        result
    }

    /// Dirty keys nobody has drained for `age` (see [`BlobCache::orphaned_dirty_keys`]).
    pub async fn orphans(&self, age: Duration, limit: usize) -> Result<Vec<String>, CacheError> {
        self.cache.orphaned_dirty_keys(age, limit).await
    }

    async fn store_until_clean(
        &self,
        key: &BlobKey,
        lease: &UploadLease,
    ) -> Result<Drained, DrainError> {
        // The size before the bytes, so they are read only once they fit in the budget: the
        // claim read it; a newer version (another turn of the loop) is sized again.
        let mut claimed = Some(lease.claimed_size());
        loop {
            let size = match claimed.take() {
                Some(size) => size,
                None => self.cache.blob_size(key).await?,
            };
            let _reserved = self.reserve(size).await;
            let cached = match self.cache.get(key).await? {
                Some(cached) if !cached.persisted => cached,
                // Already clean, or gone from the cache: nothing to store.
                _ => {
                    lease.release().await?;
                    return Ok(Drained::Done);
                }
            };
            if let Err(e) = self
                .write_to_s3(key, cached.blob.as_ref(), cached.version)
                .await
            {
                let error = e.to_string();
                tracing::error!(%error, "S3 refused the key permanently; dead-lettering it");
                self.cache
                    .dead_letter(key, lease, cached.version, &error)
                    .await?;
                return Ok(Drained::DeadLettered);
            }
            match self
                .cache
                .finish_upload(key, lease, cached.version, self.cache_ttl)
                .await?
            {
                Finish::Clean | Finish::Gone => return Ok(Drained::Done),
                Finish::Newer => continue,
                Finish::Lost => {
                    tracing::warn!("upload lease expired mid-upload; re-queueing the key");
                    let job = DrainJob::one(key.to_string(), cached.version);
                    // If this push fails too, the sweep finds the dirty key.
                    let _ = self.queue.push(job).await;
                    return Ok(Drained::Done);
                }
            }
        }
    }

    /// Stores the blob, or deletes the object for a delete marker (`None`). Transient failures
    /// are retried until they succeed; returns the error once a failure proved permanent.
    async fn write_to_s3(
        &self,
        key: &BlobKey,
        blob: Option<&Blob>,
        version: u64,
    ) -> Result<(), StoreError> {
        let attempt = || async {
            match blob {
                Some(blob) => self.store.put(key, blob).await,
                None => self.store.delete(key, version).await,
            }
        };
        let mut permanent_failures = 0;
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(self.max_backoff)
                    .with_jitter()
                    .without_max_times(),
            )
            .when(|e| match e {
                StoreError::Permanent(_) => {
                    permanent_failures += 1;
                    permanent_failures < PERMANENT_ATTEMPTS
                }
                StoreError::Transient { .. } => true,
            })
            .adjust(|e, delay| {
                let asked = match e {
                    StoreError::Transient { retry_after, .. } => *retry_after,
                    StoreError::Permanent(_) => None,
                };
                delay.map(|d| pause(d, asked, self.max_backoff))
            })
            .notify(|e, pause| {
                tracing::warn!(error = %e, ?pause, "S3 write failed; retrying");
                let (cache, key) = (self.cache.clone(), key.clone());
                tokio::spawn(async move { cache.count_upload_failure(&key).await });
            })
            .await
    }
}

/// The pause before the next attempt: the backoff's (jitter included) capped at `cap`, but
/// never shorter than what the server asked for: it knows best how long it needs.
fn pause(backoff: Duration, asked: Option<Duration>, cap: Duration) -> Duration {
    backoff.min(cap).max(asked.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::pause;
    use std::time::Duration;

    #[test]
    fn pauses_stay_under_the_cap_unless_the_server_asks_for_longer() {
        let s = Duration::from_secs;
        assert_eq!(pause(Duration::from_millis(9_900), None, s(5)), s(5));
        assert_eq!(pause(s(1), None, s(5)), s(1));
        assert_eq!(pause(s(1), Some(s(3)), s(5)), s(3));
        assert_eq!(pause(s(9), Some(s(30)), s(5)), s(30));
    }
}
