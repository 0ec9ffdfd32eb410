//! Object storage: where blobs end up. One object per key, with the extension and version in
//! the object's metadata so a cache miss can rebuild the exact record.
//!
//! [`BlobStore`] is what the service and the drain need of a store; [`s3::S3Store`] is the
//! implementation chosen at start-up. A missing object is `Ok(None)`, never an error, so a
//! caller cannot confuse "no such key" with a store that is down.

mod classify;
mod metadata;
mod s3;

pub use classify::StoreError;
pub use s3::S3Store;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::domain::{Blob, BlobKey};

/// An object being read: what the blob's record would hold, and the bytes as a stream.
pub struct StoredObject {
    pub content_type: String,
    pub extension: String,
    pub version: u64,
    pub length: u64,
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl StoredObject {
    /// Reads the whole object into one buffer.
    pub async fn read_all(self) -> Result<Blob, StoreError> {
        use futures::TryStreamExt as _;
        let chunks: Vec<Bytes> = self.body.try_collect().await?;
        let data = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(chunks.concat()),
        };
        Ok(Blob {
            data,
            extension: self.extension,
            content_type: self.content_type,
            version: self.version,
        })
    }
}

/// What a store keeps beside an object's bytes (a listing gives neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub extension: String,
    pub version: u64,
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// (key, size) pairs.
    pub objects: Vec<(String, u64)>,
    /// The store has more keys after the last one.
    pub truncated: bool,
}

/// One version of a key as S3 keeps it: a blob, or a delete.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// S3's own id of the version (opaque; `"null"` for one written before versioning).
    pub id: String,
    pub info: ObjectInfo,
    pub deleted: bool,
    pub size: u64,
    /// When S3 got it (RFC 3339).
    pub stored_at: Option<String>,
}

/// One page of a key's versions, newest first.
#[derive(Debug, Clone, Default)]
pub struct VersionPage {
    pub versions: Vec<StoredVersion>,
    /// S3's version id to continue after, when more versions may follow.
    pub next: Option<String>,
}

/// A part of a multipart upload, as completing the upload needs it.
#[derive(Debug, Clone)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: Option<String>,
}

/// What an object carries besides its bytes when it is written in parts.
pub struct ObjectMeta<'a> {
    pub content_type: &'a str,
    pub extension: &'a str,
    pub version: u64,
}

/// A multipart upload in progress: the key it writes and the store's id for it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: BlobKey,
    pub id: String,
}

/// What the service and the drain need of object storage.
///
/// Cancellation: every method may be dropped mid-flight (a client that went away, a shutdown).
/// A dropped `put` or `complete_upload` leaves the old object or the new one, never a mix; a
/// dropped multipart upload leaves parts that [`MultipartUpload::abort_upload`] or the store's
/// own lifecycle rules remove.
#[async_trait::async_trait]
pub trait BlobStore: MultipartUpload + Send + Sync + 'static {
    /// Stores a whole blob as the object of `key`, with its version and extension. One attempt:
    /// the drain, its only caller, retries.
    async fn put(&self, key: &BlobKey, blob: &Blob) -> Result<(), StoreError>;

    /// Removes the object, as the delete numbered `version`; a missing object is not an error
    /// (deletes are idempotent). One attempt: the drain, its only caller, retries.
    async fn delete(&self, key: &BlobKey, version: u64) -> Result<(), StoreError>;

    /// Starts reading an object: its metadata now, its bytes as they arrive.
    async fn open(&self, key: &BlobKey) -> Result<Option<StoredObject>, StoreError>;

    /// The extension and version kept with `key`'s object.
    async fn describe(&self, key: &BlobKey) -> Result<Option<ObjectInfo>, StoreError>;

    /// Up to `max` objects starting with `prefix`, after the key `after`, in key order.
    async fn list(&self, prefix: &str, after: Option<&str>, max: usize) -> StoreResult<Listing>;

    /// Up to `max` versions of `key` the bucket keeps, newest first, deletes included, after
    /// the version id `after` (a page's `next`). On an unversioned bucket: the object alone.
    async fn versions(
        &self,
        key: &BlobKey,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<VersionPage>;

    /// Opens the version of `key` that a write numbered `version`; `None` when it is not kept.
    async fn open_version(&self, key: &BlobKey, version: u64) -> StoreResult<Option<StoredObject>>;

    /// Cheap reachability probe for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Writing one object in parts, so a blob larger than memory can stream through.
#[async_trait::async_trait]
pub trait MultipartUpload {
    /// Starts a multipart upload of `key` carrying `meta`.
    async fn start_upload(&self, key: &BlobKey, meta: ObjectMeta<'_>) -> StoreResult<Upload>;

    /// Uploads part `number` (from 1).
    async fn upload_part(
        &self,
        upload: &Upload,
        number: i32,
        data: Bytes,
    ) -> StoreResult<UploadedPart>;

    /// Makes the uploaded parts the object, in one step: readers see the old or the new object.
    async fn complete_upload(&self, upload: &Upload, parts: Vec<UploadedPart>) -> StoreResult<()>;

    /// Drops an unfinished multipart upload and its parts (best effort).
    async fn abort_upload(&self, upload: &Upload);
}

pub type StoreResult<T> = Result<T, StoreError>;
