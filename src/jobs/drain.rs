//! What one drain job does: copy the newest version of one key from Redis to S3, then mark it
//! clean, without ever leaving S3 older than the last acknowledged write.
//!
//! Safety argument, in short:
//! - Only the holder of a key's upload lease uploads it, so two uploads of one key never race.
//! - The holder keeps uploading the newest cached version until `finish_upload` confirms that
//!   the version it stored is still the newest (`Finish::Newer` means loop again). A PUT that
//!   finds its key already dirty therefore needs no job of its own: the holder will pick it up.
//! - A lease lost mid-upload (a stalled worker) marks the key dirty again and re-queues it,
//!   because our late upload may have overwritten a newer object.
//! - A key left dirty with no job (a crash between the cache write and the enqueue, a dead
//!   lease holder) is re-queued by the worker's sweep ([`super::worker`]).
//! - Handlers are idempotent: a job delivered twice finds the key clean and does nothing.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use rand::Rng as _;

use crate::cache::{BlobCache, CacheError, Finish};
use crate::domain::BlobKey;
use crate::store::{BlobStore, StoreError};

use super::queue::{DrainJob, JobQueue};

/// How long a worker may hold a key's lease without renewing it. Renewed before every upload
/// attempt, and S3 attempts time out before it (20 s).
const LEASE_TTL: Duration = Duration::from_secs(30);

/// Attempts for a failure S3 calls permanent (403, a bad request...) before the job fails and
/// apalis reschedules it; transient failures are retried without limit.
const PERMANENT_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("job names an invalid key: {0}")]
    BadKey(String),
}

/// Everything a drain job needs; shared by all jobs of a worker process.
#[derive(Clone)]
pub struct Drainer {
    pub cache: BlobCache,
    pub store: BlobStore,
    pub queue: JobQueue,
    pub cache_ttl: Duration,
    /// Longest pause between upload retries.
    pub max_backoff: Duration,
}

impl Drainer {
    /// Runs one job to completion. See the module docs for why this never loses a write.
    #[tracing::instrument(skip_all, fields(key = %job.key, version = job.version))]
    pub async fn drain(&self, job: &DrainJob) -> Result<(), DrainError> {
        let key = BlobKey::parse(job.key.clone()).map_err(|e| DrainError::BadKey(e.to_string()))?;
        let token = lease_token();
        if !self.cache.claim_lease(&key, &token, LEASE_TTL).await? {
            // The holder uploads until the key is clean, newest version included. If it died,
            // its lease expires and the sweep re-queues the key.
            return Ok(());
        }
        let result = self.upload_until_clean(&key, &token, job).await;
        if result.is_err() {
            // Let the rescheduled job (or another worker) take over at once.
            let _ = self.cache.release_lease(&key, &token).await;
        }
        result
    }

    async fn upload_until_clean(
        &self,
        key: &BlobKey,
        token: &str,
        job: &DrainJob,
    ) -> Result<(), DrainError> {
        loop {
            let Some(cached) = self.cache.get(key).await? else {
                self.cache.release_lease(key, token).await?;
                return Ok(());
            };
            if !cached.dirty {
                self.cache.release_lease(key, token).await?;
                return Ok(());
            }
            let blob = cached.blob;
            let upload = || async {
                self.cache.renew_lease(key, token, LEASE_TTL).await?;
                self.store.put(key, &blob).await?;
                Ok::<_, DrainError>(())
            };
            let mut permanent_failures = 0;
            upload
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(50))
                        .with_max_delay(self.max_backoff)
                        .with_jitter()
                        .without_max_times(),
                )
                .when(|e| match e {
                    DrainError::Store(StoreError::Permanent(_)) => {
                        permanent_failures += 1;
                        permanent_failures < PERMANENT_ATTEMPTS
                    }
                    DrainError::Store(_) | DrainError::Cache(_) => true,
                    _ => false,
                })
                .notify(|e, pause| {
                    tracing::warn!(error = %e, ?pause, "upload failed; retrying");
                })
                .await?;
            match self
                .cache
                .finish_upload(key, token, blob.version, self.cache_ttl)
                .await?
            {
                Finish::Clean | Finish::Gone => return Ok(()),
                Finish::Newer => continue,
                Finish::Lost => {
                    tracing::warn!("upload lease expired mid-upload; re-queueing the key");
                    self.queue
                        .push(DrainJob {
                            key: job.key.clone(),
                            version: blob.version,
                        })
                        .await
                        .map_err(|e| CacheError::Unavailable(e.to_string()))?;
                    return Ok(());
                }
            }
        }
    }
}

fn lease_token() -> String {
    format!("{:032x}", rand::rng().random::<u128>())
}
