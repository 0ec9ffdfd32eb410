//! The blob service: every operation the edge offers, free of HTTP so tests and other front
//! ends can call them. It owns its cache, store and queue and hands none of them out: the
//! edge sees only these operations. (Tests and benchmarks that inspect Redis or push jobs
//! themselves use the crate's `cache` and `queue` modules and `startup::Dependencies::queue`
//! directly, not the service.)
//!
//! PUT/DELETE: validate -> one Lua round trip that caches a new dirty version and queues a drain
//! job if nobody drains the key yet -> with write concern 1, wait until S3 has it.
//! GET: cache (a delete marker answers 404), else S3 and re-cache as clean (never over a newer
//! record). Blobs over the write-through size skip the cache ([`write_through`]).
//! Reads fall back to a mirror store when the primary fails ([`reading`]).
//! Listing merges the cache's dirty keys with S3's listing ([`merged_listing`]).
//! Operators: the backlog and the dead letters ([`operations`]).

mod failure;
mod merged_listing;
mod operations;
mod reading;
mod version_history;
mod write_through;

pub use failure::ServiceError;
use failure::confirmed;
pub use merged_listing::{DEFAULT_LIMIT, Item, MAX_LIMIT, Page, decode_cursor};
pub use operations::{MirrorStatus, Status};
pub use reading::{Opened, Read, ServedBy};
pub use version_history::{History, HistoryEntry, HistoryStart};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::{BlobCache, Written};
use crate::domain::{BlobKey, Extension, IdempotencyKey};
use crate::queue::JobQueue;
use crate::store::BlobStore;

/// What a PUT or DELETE did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: BlobKey,
    pub size: usize,
    pub version: u64,
    /// S3 already has this version (a write-through).
    pub persisted: bool,
    /// Nothing was written: the request (its `Idempotency-Key`) wrote `version` before.
    pub repeated: bool,
}

/// Sizes the service enforces, and whether the bucket keeps history.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_blob_bytes: usize,
    /// Blobs larger than this skip the cache and stream straight to S3.
    pub write_through_bytes: usize,
    /// How long a blob already in S3 stays cached.
    pub cache_ttl: Duration,
    /// The bucket keeps every version: `history` and `open_version` read them.
    pub history: bool,
}

#[derive(Clone)]
pub struct BlobService {
    cache: BlobCache,
    store: Arc<dyn BlobStore>,
    queue: JobQueue,
    limits: Limits,
    /// The mirror stores, by name: reads fall back to them when the primary store fails.
    mirrors: Arc<Vec<(String, Arc<dyn BlobStore>)>>,
}

impl BlobService {
    pub fn new(
        cache: BlobCache,
        store: Arc<dyn BlobStore>,
        queue: JobQueue,
        limits: Limits,
    ) -> Self {
        Self {
            cache,
            store,
            queue,
            limits,
            mirrors: Arc::default(),
        }
    }

    /// Reads that miss the cache fall back to `mirrors` (in order) when the primary fails.
    pub fn reading_mirrors(mut self, mirrors: Vec<(String, Arc<dyn BlobStore>)>) -> Self {
        self.mirrors = Arc::new(mirrors);
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The number of the Redis shard `key` lives in (for traces).
    pub fn shard_of(&self, key: &BlobKey) -> usize {
        self.cache.shard_index(key)
    }

    /// Opens this thread's own Redis connection (call once on each HTTP worker thread).
    pub fn connect_this_thread(&self) {
        self.cache.connect_this_thread();
    }

    /// Stores a blob: once this returns, every replica reads it and a worker will copy it to S3
    /// (blobs over `write_through_bytes` are in S3 already: see [`Self::write_through`]). A
    /// write that names its request is applied once; a repeat gets the first one's answer
    /// (not for write-throughs: nginx cannot resend a body it streamed).
    #[tracing::instrument(skip_all, fields(%key, size = data.len()))]
    pub async fn put(
        &self,
        key: BlobKey,
        extension: &Extension,
        content_type: &str,
        data: &[u8],
        request: Option<&IdempotencyKey>,
    ) -> Result<Stored, ServiceError> {
        self.check_size(data.len())?;
        if data.len() > self.limits.write_through_bytes {
            let data = Bytes::copy_from_slice(data);
            let no_more = futures::stream::empty::<Result<Bytes, ServiceError>>();
            return self
                .write_through(key, extension, content_type, data, no_more)
                .await;
        }
        let written = self
            .cache
            .put(&key, extension.as_str(), content_type, data, request)
            .await?;
        tracing::debug!(
            version = written.version,
            queued = written.queued,
            repeated = written.repeated,
            "cached"
        );
        confirmed(&key, &written)?;
        Ok(Stored {
            key,
            size: data.len(),
            version: written.version,
            persisted: false,
            repeated: written.repeated,
        })
    }

    fn check_size(&self, size: usize) -> Result<(), ServiceError> {
        let max = self.limits.max_blob_bytes;
        if size > max {
            return Err(ServiceError::TooLarge { size, max });
        }
        Ok(())
    }

    /// Deletes a blob: reads answer 404 at once everywhere; a worker removes the S3 object.
    /// A delete that names its request is applied once, as [`Self::put`].
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(
        &self,
        key: BlobKey,
        request: Option<&IdempotencyKey>,
    ) -> Result<Stored, ServiceError> {
        let exists = match self.cache.get(&key).await? {
            Some(cached) => cached.blob.is_some(),
            None => self.store.describe(&key).await?.is_some(),
        };
        let written = if exists {
            self.cache.delete(&key, request).await?
        } else {
            // The key may be gone because this very request deleted it (nginx resent it to
            // this replica after the first one died before answering): answer as it did.
            let earlier = match request {
                Some(id) => self.cache.earlier_delete(&key, id).await?,
                None => None,
            };
            let Some(version) = earlier else {
                return Err(ServiceError::NotFound(key.to_string()));
            };
            Written {
                version,
                replicated: true,
                queued: false,
                repeated: true,
            }
        };
        confirmed(&key, &written)?;
        Ok(Stored {
            key,
            size: 0,
            version: written.version,
            persisted: false,
            repeated: written.repeated,
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
                Some(cached) if cached.persisted && cached.version >= version => return Ok(true),
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

    /// Waits until every mirror store has what the primary store has of `key` (call once the
    /// primary has the version waited for). Returns the mirrors still owed it at `deadline`.
    pub async fn wait_mirrored(
        &self,
        key: &BlobKey,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<String>, ServiceError> {
        let mut pause = Duration::from_millis(5);
        loop {
            let owing = self.cache.mirrors_owing(key.as_str()).await?;
            if owing.is_empty() || tokio::time::Instant::now() + pause > deadline {
                return Ok(owing);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 3 / 2).min(Duration::from_millis(50));
        }
    }

    /// What is down: (`"Redis"` or `"S3"`, its error); empty when both answer.
    pub async fn unready_dependencies(&self) -> Vec<(&'static str, String)> {
        let (redis, s3) = tokio::join!(self.cache.ping(), self.store.ping());
        [
            ("Redis", redis.err().map(|e| e.to_string())),
            ("S3", s3.err().map(|e| e.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, err)| err.map(|e| (name, e)))
        .collect()
    }
}
