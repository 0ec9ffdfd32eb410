//! The blob service: the write, delete and read paths, free of HTTP so tests and other front
//! ends can call them.
//!
//! PUT/DELETE: validate -> one Lua round trip that caches a new dirty version and queues a drain
//! job if nobody drains the key yet -> with write concern 1, wait until S3 has it.
//! GET: cache (a delete marker answers 404), else S3 and re-cache as clean (never over a newer
//! record).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use serde::Serialize;

use crate::cache::{BlobCache, CacheError, DeadLetter, WriteThrough};
use crate::domain::{Blob, BlobKey, Extension, InvalidInput};
use crate::jobs::JobQueue;
use crate::store::{BlobStore, CompletedPart, StoreError, StoredObject};

/// Size of each part of a write-through upload (S3 wants at least 5 MiB but the last).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// A write-through's lease on its key, renewed every third of it while the upload runs.
const WRITE_THROUGH_LEASE: Duration = Duration::from_secs(10);
/// How long a write-through waits for a worker (or another write) to release the key.
const WRITE_THROUGH_LEASE_WAIT: Duration = Duration::from_secs(30);

async fn join_part(
    handle: tokio::task::JoinHandle<Result<CompletedPart, StoreError>>,
) -> Result<CompletedPart, ServiceError> {
    handle
        .await
        .map_err(|e| {
            ServiceError::Store(StoreError::Transient {
                message: format!("the task uploading a part failed: {e}"),
                retry_after: None,
            })
        })?
        .map_err(ServiceError::Store)
}

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
    /// A write-through waited too long for the key's upload lease.
    #[error("another upload of key {0:?} is still running; retry later")]
    KeyBusy(String),
    /// The client's body broke off mid-stream.
    #[error("cannot read the body: {0}")]
    Body(String),
}

fn store_error(key: &BlobKey) -> impl FnOnce(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::NotFound => ServiceError::NotFound(key.to_string()),
        other => ServiceError::Store(other),
    }
}

/// A blob being read: whole, or streaming from S3 (see [`BlobService::open`]).
pub enum Opened {
    Whole(Blob),
    Streaming(StoredObject),
}

/// What a PUT or DELETE did.
#[derive(Debug, Clone)]
pub struct Stored {
    pub key: BlobKey,
    pub size: usize,
    pub version: u64,
    /// S3 already has this version (a write-through).
    pub in_s3: bool,
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
    /// Blobs larger than this skip the cache and stream straight to S3 ([`Self::put_through`]).
    pub write_through_bytes: usize,
}

impl BlobService {
    /// Stores a blob: once this returns, every replica reads it and a worker will copy it to S3
    /// (blobs over `write_through_bytes` are in S3 already: see [`Self::put_through`]).
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
        if data.len() > self.write_through_bytes {
            let data = Bytes::copy_from_slice(data);
            let no_more = futures::stream::empty::<Result<Bytes, std::convert::Infallible>>();
            return self
                .put_through(key, extension, content_type, data, no_more)
                .await;
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
            in_s3: false,
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
            in_s3: false,
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

    /// Reads the newest version of a blob, whole.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Blob, ServiceError> {
        match self.open(key).await? {
            Opened::Whole(blob) => Ok(blob),
            Opened::Streaming(object) => object.read_all().await.map_err(ServiceError::Store),
        }
    }

    /// Reads the newest version of a blob: whole when it is cached or small, else (a blob
    /// over the write-through size, only in S3) as a stream straight from S3, so a replica
    /// never holds such a blob whole, nor puts it in the cache.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn open(&self, key: &BlobKey) -> Result<Opened, ServiceError> {
        // A Redis error must not fall through to S3: Redis may hold a newer, dirty version.
        let cached = self.cache.get(key).await?;
        crate::metrics::cache_lookup(cached.is_some());
        if let Some(cached) = cached {
            return cached
                .blob
                .map(Opened::Whole)
                .ok_or_else(|| ServiceError::NotFound(key.to_string()));
        }
        let object = self.store.open(key).await.map_err(store_error(key))?;
        if object.length > self.write_through_bytes as u64 {
            return Ok(Opened::Streaming(object));
        }
        let blob = object.read_all().await.map_err(ServiceError::Store)?;
        if let Err(e) = self.cache.recache(key, &blob, self.cache_ttl).await {
            tracing::warn!(error = %e, "cannot re-cache a blob read from S3");
        }
        Ok(Opened::Whole(blob))
    }

    /// Stores a blob too large for the cache straight in S3, as a multipart upload streamed
    /// from `body` (`head` is what was read of it already): memory stays bounded by two parts
    /// whatever the size. Once this returns, S3 holds the blob, so every replica reads it (from
    /// S3) and any older cached version of the key is gone. Holds the key's upload lease
    /// throughout, so no worker uploads an older cached version over it; a write that arrives
    /// meanwhile is newer and wins (it is drained afterwards).
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn put_through<E: std::fmt::Display>(
        &self,
        key: BlobKey,
        extension: &Extension,
        content_type: &str,
        head: Bytes,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
    ) -> Result<Stored, ServiceError> {
        let token = format!("{:032x}", rand::random::<u128>());
        let version = self.lease_for_write_through(&key, &token).await?;
        let lost = std::sync::atomic::AtomicBool::new(false);
        let renew = async {
            loop {
                tokio::time::sleep(WRITE_THROUGH_LEASE / 3).await;
                if let Ok(false) = self
                    .cache
                    .renew_lease(&key, &token, WRITE_THROUGH_LEASE)
                    .await
                {
                    lost.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        };
        let upload = self.upload_parts(&key, extension, content_type, version, head, body, &lost);
        let uploaded = tokio::select! {
            result = upload => result,
            _ = renew => unreachable!("the renewal loop never ends"),
        };
        let size = match uploaded {
            Ok(size) => size,
            Err(e) => {
                let _ = self.cache.release_lease(&key, &token).await;
                return Err(e);
            }
        };
        match self
            .cache
            .finish_write_through(&key, &token, version, self.queue.keys())
            .await?
        {
            WriteThrough::Stored | WriteThrough::Newer => Ok(Stored {
                key,
                size,
                version,
                in_s3: true,
            }),
            WriteThrough::Lost => Err(ServiceError::Store(StoreError::Transient {
                message: "the upload outlived its lease; retry the write".into(),
                retry_after: None,
            })),
        }
    }

    /// Waits (a bounded time) for the key's upload lease; returns the write's version.
    async fn lease_for_write_through(
        &self,
        key: &BlobKey,
        token: &str,
    ) -> Result<u64, ServiceError> {
        let deadline = tokio::time::Instant::now() + WRITE_THROUGH_LEASE_WAIT;
        loop {
            if let Some(version) = self
                .cache
                .begin_write_through(key, token, WRITE_THROUGH_LEASE)
                .await?
            {
                return Ok(version);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ServiceError::KeyBusy(key.to_string()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The multipart upload itself: one part uploading while the next is read. Aborted (no
    /// object changes) on any error or when the lease is lost. Returns the size.
    #[allow(clippy::too_many_arguments)]
    async fn upload_parts<E: std::fmt::Display>(
        &self,
        key: &BlobKey,
        extension: &Extension,
        content_type: &str,
        version: u64,
        head: Bytes,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
        lost: &std::sync::atomic::AtomicBool,
    ) -> Result<usize, ServiceError> {
        let upload_id = self
            .store
            .start_upload(key, content_type, extension.as_str(), version)
            .await
            .map_err(ServiceError::Store)?;
        let result: Result<usize, ServiceError> = async {
            let mut parts = Vec::new();
            let mut in_flight: Option<tokio::task::JoinHandle<Result<_, StoreError>>> = None;
            let mut size = head.len();
            // The bytes read so far become the first part's buffer (no copy when unshared).
            let mut buffer = BytesMut::from(head);
            buffer.reserve(PART_BYTES.saturating_sub(buffer.len()));
            let mut finished = false;
            while !finished {
                match body.next().await {
                    Some(chunk) => {
                        let chunk = chunk.map_err(|e| ServiceError::Body(e.to_string()))?;
                        size += chunk.len();
                        if size > self.max_blob_bytes {
                            return Err(ServiceError::TooLarge {
                                size,
                                max: self.max_blob_bytes,
                            });
                        }
                        buffer.extend_from_slice(&chunk);
                    }
                    None => finished = true,
                }
                // Full parts go as soon as they are full; the last one may be smaller.
                while buffer.len() >= PART_BYTES || (finished && !buffer.is_empty()) {
                    let take = buffer.len().min(PART_BYTES);
                    let part = buffer.split_to(take).freeze();
                    if let Some(previous) = in_flight.take() {
                        parts.push(join_part(previous).await?);
                    }
                    let (store, key, id) = (self.store.clone(), key.clone(), upload_id.clone());
                    let number = (parts.len() + 1) as i32;
                    in_flight = Some(tokio::spawn(async move {
                        store.upload_part(&key, &id, number, part).await
                    }));
                    if buffer.capacity() < PART_BYTES {
                        buffer.reserve(PART_BYTES);
                    }
                }
            }
            if let Some(previous) = in_flight.take() {
                parts.push(join_part(previous).await?);
            }
            if lost.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ServiceError::Store(StoreError::Transient {
                    message: "the upload lost its lease before completing; retry the write".into(),
                    retry_after: None,
                }));
            }
            self.store
                .complete_upload(key, &upload_id, parts)
                .await
                .map_err(ServiceError::Store)?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            self.store.abort_upload(key, &upload_id).await;
        }
        result
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
