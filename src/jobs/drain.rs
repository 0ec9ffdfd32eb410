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
//! - A drain tries S3 a few times in a row (a short backoff, honouring `Retry-After`), then
//!   gives its slot back: after transient failures the key waits for its next turn on a
//!   backoff kept in Redis (`BlobCache::retry_later`; the sweep drains it when due), after
//!   permanent ones it is dead-lettered. Either way it stays dirty in the cache and is never
//!   dropped, and a key S3 fails for costs only its own retries, never another key's slot.
//! - A key this version's rules refuse (written under an older version's) is dead-lettered
//!   with the reason, for an operator to decide about; it is never retried in a loop.
//! - Draining is idempotent: a job delivered twice finds the key clean and does nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tracing::Instrument as _;

use super::turn::{Refused, write_to_s3};
use crate::cache::{Backoff, BlobCache, CacheError, Finish, QueueHealth, UploadLease};
use crate::domain::BlobKey;
use crate::queue::{DrainJob, JobQueue};
use crate::store::{BlobStore, StoreError};

/// How long a lease lives without renewal; renewed every third of it while uploading.
const LEASE_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// S3 now reflects the newest version (or the key was already clean, or left the cache).
    Done,
    /// Another worker holds the key's lease and will finish it.
    Busy,
    /// S3 refused permanently, or the key breaks this version's rules; the key is in the dead
    /// letters and still dirty in the cache.
    DeadLettered,
    /// S3 failed several times in a row; the key waits for its next turn, still dirty.
    RetryLater,
}

/// Everything a drain needs; shared by all jobs of a worker process.
#[derive(Clone)]
pub struct Drainer {
    cache: BlobCache,
    store: Arc<dyn BlobStore>,
    queue: JobQueue,
    cache_ttl: Duration,
    /// When a key S3 failed for gets its next turn.
    retry: Backoff,
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
        retry: Backoff,
        max_bytes_in_flight: usize,
        concurrency: usize,
    ) -> Self {
        Self {
            cache,
            store,
            queue,
            cache_ttl,
            retry,
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
        let key = match BlobKey::parse(key.to_owned()) {
            Ok(key) => key,
            Err(e) => {
                let error = format!(
                    "the key breaks this version's key rules ({e}); it was written under an \
                     earlier version's"
                );
                tracing::error!(%error, "dead-lettering a key this version cannot store");
                self.cache
                    .dead_letter_invalid_key(key, version, &error)
                    .await?;
                return Ok(Drained::DeadLettered);
            }
        };
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
    pub async fn orphans(
        &self,
        age: Duration,
        limit: usize,
        queue: QueueHealth,
    ) -> Result<Vec<String>, CacheError> {
        self.cache.orphaned_dirty_keys(age, limit, queue).await
    }

    /// Counts keys the sweep drained because their job was lost (for `/metrics`).
    pub async fn count_orphans(&self, keys: &[String]) {
        self.cache.count_orphans(keys).await
    }

    /// Keys S3 failed for whose next turn is due (see [`BlobCache::due_retries`]).
    pub async fn due_retries(&self, limit: usize) -> Result<Vec<String>, CacheError> {
        self.cache.due_retries(limit).await
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
            // This upload's trace links back to the write that queued this version.
            let work = crate::telemetry::work_span("drain", key.as_str(), cached.trace.as_deref());
            let blob = cached.blob.as_ref();
            let stored = write_to_s3(self.store.as_ref(), &self.cache, key, blob, cached.version);
            match stored.instrument(work.clone()).await {
                Ok(()) => {}
                Err(Refused::Permanent(e)) => {
                    let error = e.to_string();
                    tracing::error!(%error, "S3 refused the key permanently; dead-lettering it");
                    self.cache
                        .dead_letter(key, lease, cached.version, &error)
                        .await?;
                    return Ok(Drained::DeadLettered);
                }
                Err(Refused::Transient(e)) => {
                    let asked = match &e {
                        StoreError::Transient { retry_after, .. } => *retry_after,
                        StoreError::Permanent(_) => None,
                    };
                    let error = e.to_string();
                    let (turns, delay) = self
                        .cache
                        .retry_later(key, lease, &error, self.retry, asked)
                        .await?;
                    tracing::warn!(%error, turns, ?delay, "S3 keeps failing for the key; retrying it later");
                    return Ok(Drained::RetryLater);
                }
            }
            match self
                .cache
                .finish_upload(key, lease, cached.version, self.cache_ttl)
                .instrument(work)
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
}
