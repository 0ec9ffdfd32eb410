//! The blob service: the write, delete and read paths, free of HTTP so tests and other front
//! ends can call them.
//!
//! PUT/DELETE: validate -> one Lua round trip that caches a new dirty version and queues a drain
//! job if nobody drains the key yet -> with write concern 1, wait until S3 has it.
//! GET: cache (a delete marker answers 404), else S3 and re-cache as clean (never over a newer
//! record).

use std::time::Duration;

use serde::Serialize;

use crate::cache::{BlobCache, CacheError, DeadLetter};
use crate::domain::{Blob, BlobKey, Extension, InvalidInput};
use crate::jobs::JobQueue;
use crate::store::{BlobStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("the blob is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("no blob with key {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Store(StoreError),
}

fn store_error(key: &BlobKey) -> impl FnOnce(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::NotFound => ServiceError::NotFound(key.to_string()),
        other => ServiceError::Store(other),
    }
}

/// What a PUT or DELETE did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: BlobKey,
    pub size: usize,
    pub version: u64,
}

/// How far a write must have gone before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConcern {
    /// In Redis (AOF-backed) and queued for S3.
    Cached,
    /// In S3 (this version or a newer one).
    Persisted,
}

/// The backlog, for `/status` and `flush`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Drain jobs waiting to run (queued, or scheduled for a retry).
    pub queued_jobs: u64,
    /// Records (blobs and deletes) not yet reflected in S3.
    pub dirty: u64,
    /// How long the oldest dirty record has waited, in seconds.
    pub oldest_dirty_age_secs: Option<f64>,
    pub dead_letters: u64,
    /// The first dead letters (up to 100).
    pub dead_letter_sample: Vec<DeadLetter>,
}

#[derive(Clone)]
pub struct BlobService {
    pub cache: BlobCache,
    pub store: BlobStore,
    pub queue: JobQueue,
    pub max_blob_bytes: usize,
    pub cache_ttl: Duration,
}

impl BlobService {
    /// Stores a blob: once this returns, every replica reads it and a worker will copy it to S3.
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: BlobKey,
        extension: &Extension,
        content_type: &str,
        data: &[u8],
    ) -> Result<Stored, ServiceError> {
        if data.len() > self.max_blob_bytes {
            return Err(ServiceError::TooLarge {
                size: data.len(),
                max: self.max_blob_bytes,
            });
        }
        let written = self
            .cache
            .put(
                &key,
                extension.as_str(),
                content_type,
                data,
                self.queue.keys(),
            )
            .await?;
        tracing::debug!(version = written.version, queued = written.queued, "cached");
        Ok(Stored {
            key,
            size: data.len(),
            version: written.version,
        })
    }

    /// Deletes a blob: reads answer 404 at once everywhere; a worker removes the S3 object.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(&self, key: BlobKey) -> Result<Stored, ServiceError> {
        let exists = match self.cache.get(&key).await? {
            Some(cached) => cached.blob.is_some(),
            None => self
                .store
                .describe(&key)
                .await
                .map_err(store_error(&key))?
                .is_some(),
        };
        if !exists {
            return Err(ServiceError::NotFound(key.to_string()));
        }
        let written = self.cache.delete(&key, self.queue.keys()).await?;
        Ok(Stored {
            key,
            size: 0,
            version: written.version,
        })
    }

    /// Waits until S3 reflects `version` of `key` (or a newer one); false on timeout.
    pub async fn wait_persisted(
        &self,
        key: &BlobKey,
        version: u64,
        timeout: Duration,
    ) -> Result<bool, ServiceError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.cache.get(key).await? {
                Some(cached) if !cached.dirty && cached.version >= version => return Ok(true),
                Some(_) => {}
                // Clean and already expired: S3 has what the cache had.
                None => return Ok(true),
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(Duration::from_millis(50));
        }
    }

    /// Reads the newest version of a blob.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Blob, ServiceError> {
        // A Redis error must not fall through to S3: Redis may hold a newer, dirty version.
        let cached = self.cache.get(key).await?;
        crate::metrics::cache_lookup(cached.is_some());
        if let Some(cached) = cached {
            return cached
                .blob
                .ok_or_else(|| ServiceError::NotFound(key.to_string()));
        }
        let blob = self.store.get(key).await.map_err(store_error(key))?;
        if let Err(e) = self.cache.recache(key, &blob, self.cache_ttl).await {
            tracing::warn!(error = %e, "cannot re-cache a blob read from S3");
        }
        Ok(blob)
    }

    /// The drain backlog and the dead letters.
    pub async fn status(&self) -> Result<Status, ServiceError> {
        let (queued, dirty, oldest, (dead, sample)) = tokio::try_join!(
            async {
                self.queue
                    .pending()
                    .await
                    .map_err(|e| CacheError::Unavailable(e.to_string()))
            },
            self.cache.dirty_count(),
            self.cache.oldest_dirty_age(),
            self.cache.dead_letters(100),
        )?;
        Ok(Status {
            queued_jobs: queued,
            dirty,
            oldest_dirty_age_secs: oldest.map(|d| d.as_secs_f64()),
            dead_letters: dead,
            dead_letter_sample: sample,
        })
    }
}
