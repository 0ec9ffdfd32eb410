//! The blob service: the write and read paths, free of HTTP so tests and other front ends
//! can call them.
//!
//! PUT: validate -> cache as dirty (one Lua round trip) -> queue a drain job if the key was clean.
//! GET: cache, else S3 and re-cache as clean (never over a newer dirty version).

use std::time::Duration;

use crate::cache::{BlobCache, CacheError};
use crate::domain::{Blob, BlobKey, Extension, InvalidInput};
use crate::jobs::{DrainJob, JobQueue};
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

/// What a PUT stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: BlobKey,
    pub size: usize,
    pub version: u64,
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
        data: &[u8],
    ) -> Result<Stored, ServiceError> {
        if data.len() > self.max_blob_bytes {
            return Err(ServiceError::TooLarge {
                size: data.len(),
                max: self.max_blob_bytes,
            });
        }
        let written = self.cache.put(&key, extension.as_str(), data).await?;
        if written.needs_job {
            let job = DrainJob {
                key: key.to_string(),
                version: written.version,
            };
            // The blob is already stored and marked dirty; if the job cannot be queued, the
            // worker's sweep finds the dirty key and queues it. So this write still succeeds.
            if let Err(e) = self.queue.push(job).await {
                tracing::error!(error = %e, "blob cached but its drain job was not queued; the sweep will queue it");
            }
        }
        Ok(Stored {
            key,
            size: data.len(),
            version: written.version,
        })
    }

    /// Reads the newest version of a blob.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Blob, ServiceError> {
        // A Redis error must not fall through to S3: Redis may hold a newer, dirty version.
        if let Some(cached) = self.cache.get(key).await? {
            return Ok(cached.blob);
        }
        let blob = self.store.get(key).await.map_err(|e| match e {
            StoreError::NotFound => ServiceError::NotFound(key.to_string()),
            other => ServiceError::Store(other),
        })?;
        if let Err(e) = self.cache.recache(key, &blob, self.cache_ttl).await {
            tracing::warn!(error = %e, "cannot re-cache a blob read from S3");
        }
        Ok(blob)
    }
}
