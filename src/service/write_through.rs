//! Write-through: a blob too large for the cache streams straight to S3 as a multipart upload,
//! holding the key's upload lease throughout so no worker uploads an older cached version over
//! it; a write that arrives meanwhile is newer and wins (it is drained afterwards).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};

use super::{BlobService, ServiceError, Stored};
use crate::cache::{UploadLease, WriteThrough};
use crate::domain::{BlobKey, Extension};
use crate::store::{ObjectMeta, StoreError, UploadedPart};

/// Size of each part of a write-through upload (S3 wants at least 5 MiB but the last).
const PART_BYTES: usize = 8 * 1024 * 1024;
/// A write-through's lease on its key, renewed every third of it while the upload runs.
const WRITE_THROUGH_LEASE: Duration = Duration::from_secs(10);
/// How long a write-through waits for a worker (or another write) to release the key.
const WRITE_THROUGH_LEASE_WAIT: Duration = Duration::from_secs(30);

type PartTask = tokio::task::JoinHandle<Result<UploadedPart, StoreError>>;

async fn join_part(handle: PartTask) -> Result<UploadedPart, ServiceError> {
    let uploaded = handle.await.map_err(|e| {
        ServiceError::S3Unavailable(format!("the task uploading a part failed: {e}").into())
    })?;
    Ok(uploaded?)
}

impl BlobService {
    /// Stores a blob too large for the cache straight in S3, streamed from `body` (`head` is
    /// what was read of it already): memory stays bounded by two parts whatever the size.
    /// Once this returns, S3 holds the blob, so every replica reads it (from S3) and any older
    /// cached version of the key is gone.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn write_through(
        &self,
        key: BlobKey,
        extension: &Extension,
        content_type: &str,
        head: Bytes,
        body: impl Stream<Item = Result<Bytes, ServiceError>> + Unpin,
    ) -> Result<Stored, ServiceError> {
        let (lease, version) = self.lease_for_write_through(&key).await?;
        let upload = self.upload_parts(&key, extension, content_type, version, head, body, &lease);
        let size = match lease.hold_while(upload).await {
            Ok(size) => size,
            Err(e) => {
                let _ = lease.release().await;
                return Err(e);
            }
        };
        match self
            .cache
            .finish_write_through(&key, &lease, version)
            .await?
        {
            WriteThrough::Stored | WriteThrough::Newer => Ok(Stored {
                key,
                size,
                version,
                persisted: true,
                repeated: false,
            }),
            WriteThrough::Lost => Err(ServiceError::UploadInterrupted(key.to_string())),
        }
    }

    /// Waits (a bounded time) for the key's upload lease; returns it with the write's version.
    async fn lease_for_write_through(
        &self,
        key: &BlobKey,
    ) -> Result<(UploadLease, u64), ServiceError> {
        let deadline = tokio::time::Instant::now() + WRITE_THROUGH_LEASE_WAIT;
        loop {
            if let Some(taken) = self
                .cache
                .begin_write_through(key, WRITE_THROUGH_LEASE)
                .await?
            {
                return Ok(taken);
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
    async fn upload_parts(
        &self,
        key: &BlobKey,
        extension: &Extension,
        content_type: &str,
        version: u64,
        head: Bytes,
        mut body: impl Stream<Item = Result<Bytes, ServiceError>> + Unpin,
        lease: &UploadLease,
    ) -> Result<usize, ServiceError> {
        let meta = ObjectMeta {
            content_type,
            extension: extension.as_str(),
            version,
        };
        let upload = self.store.start_upload(key, meta).await?;
        let result: Result<usize, ServiceError> = async {
            let mut parts = Vec::new();
            let mut in_flight: Option<PartTask> = None;
            let mut size = head.len();
            // The bytes read so far become the first part's buffer (no copy when unshared).
            let mut buffer = BytesMut::from(head);
            buffer.reserve(PART_BYTES.saturating_sub(buffer.len()));
            let mut finished = false;
            while !finished {
                match body.next().await {
                    Some(chunk) => {
                        let chunk = chunk?;
                        size += chunk.len();
                        self.check_size(size)?;
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
                    let (store, upload) = (self.store.clone(), upload.clone());
                    let number = (parts.len() + 1) as i32;
                    in_flight = Some(tokio::spawn(async move {
                        store.upload_part(&upload, number, part).await
                    }));
                    if buffer.capacity() < PART_BYTES {
                        buffer.reserve(PART_BYTES);
                    }
                }
            }
            if let Some(previous) = in_flight.take() {
                parts.push(join_part(previous).await?);
            }
            if lease.lost() {
                return Err(ServiceError::UploadInterrupted(key.to_string()));
            }
            self.store.complete_upload(&upload, parts).await?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            self.store.abort_upload(&upload).await;
        }
        result
    }
}
