//! `ServiceError`: what went wrong with an operation, in the service's own terms, so the edge
//! maps it to an answer without knowing Redis or S3.

use crate::cache::{CacheError, Written};
use crate::domain::BlobKey;
use crate::domain::InvalidInput;
use crate::queue::QueueError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("the blob is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("no blob with key {0:?}")]
    NotFound(String),
    /// S3 does not keep that version of the key (never written, overwritten before it was
    /// drained, a delete, or removed from the bucket).
    #[error("key {0:?} has no version {1} kept")]
    VersionNotFound(String, u64),
    /// `/history` on a bucket without versioning.
    #[error(
        "history needs a bucket with versioning on (BLOBPROXY_S3_VERSIONING=on, or auto with versioning enabled on the bucket)"
    )]
    HistoryDisabled,
    /// A history cursor S3 refused: not one this service handed out.
    #[error("cursor is not one this service handed out")]
    BadCursor,
    /// A write-through waited too long for the key's upload lease.
    #[error("another upload of key {0:?} is still running; retry later")]
    KeyBusy(String),
    /// A write-through outlived its lease: another writer may have taken the key meanwhile.
    #[error(
        "the upload of key {0:?} lost its lease to another writer before it completed; retry the write"
    )]
    UploadInterrupted(String),
    /// The client's body broke off mid-stream.
    #[error("the body ended before it was complete: {0}")]
    IncompleteBody(String),
    /// The client's body did not arrive in time (`BLOBPROXY_BODY_TIMEOUT_SECS`, or a stall).
    #[error("{0}")]
    BodyTimeout(String),
    /// The write stands on the Redis primary, but fewer replicas than required confirmed it.
    #[error(
        "stored on the Redis primary as version {version}, but not confirmed by enough replicas in time; it stands"
    )]
    ReplicaAckTimeout { key: String, version: u64 },
    /// The write's `Idempotency-Key` named another write (other key or bytes) a moment ago.
    #[error(
        "this Idempotency-Key was used for another write (another key or other bytes) within the last minute; nothing was written: use a new key for a new write"
    )]
    IdempotencyKeyReused,
    // A dependency failed: the layer's own error (CacheError, QueueError, StoreError) is the
    // source, and the edge logs the whole chain but tells the client one sentence.
    #[error("Redis is out of memory; retry later")]
    RedisFull(#[source] Cause),
    #[error("Redis is unavailable")]
    RedisUnavailable(#[source] Cause),
    /// Redis answered something no script of ours returns: a bug, or a foreign writer.
    #[error("unexpected reply from Redis")]
    RedisProtocol(#[source] Cause),
    #[error("S3 is unavailable")]
    S3Unavailable(#[source] Cause),
}

/// The error of a layer below that made an operation fail.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl From<CacheError> for ServiceError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::OutOfMemory(_) => ServiceError::RedisFull(e.into()),
            CacheError::Unavailable(_) => ServiceError::RedisUnavailable(e.into()),
            CacheError::Protocol(_) => ServiceError::RedisProtocol(e.into()),
            CacheError::RequestReused => ServiceError::IdempotencyKeyReused,
        }
    }
}

impl From<QueueError> for ServiceError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full(_) => ServiceError::RedisFull(e.into()),
            QueueError::Unavailable(_) => ServiceError::RedisUnavailable(e.into()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::S3Unavailable(e.into())
    }
}

/// A write the replicas did not confirm in time: it stands, and the client is told so.
pub(super) fn confirmed(key: &BlobKey, written: &Written) -> Result<(), ServiceError> {
    if written.replicated {
        return Ok(());
    }
    Err(ServiceError::ReplicaAckTimeout {
        key: key.to_string(),
        version: written.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependencys_failure_keeps_each_layers_error_as_its_source() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = ServiceError::from(CacheError::Unavailable(refused.into()));
        assert!(matches!(e, ServiceError::RedisUnavailable(_)));
        let mut chain = vec![e.to_string()];
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            chain.push(cause.to_string());
            source = cause.source();
        }
        assert_eq!(
            chain[..2],
            ["Redis is unavailable", "Redis cannot be reached"]
        );
        assert!(
            chain[2..].iter().any(|c| c.contains("refused")),
            "{chain:?}"
        );
    }
}
