//! The S3 implementation of [`BlobStore`] (AWS, MinIO or any S3-compatible server): the
//! client and the blob operations here; setting the bucket up in [`bucket`], large writes in
//! [`multipart`], a key's history in [`versions`].

mod bucket;
mod multipart;
mod versions;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt as _;

use crate::config::{S3Keys, S3Settings};
use crate::domain::{Blob, BlobKey};
use crate::store::classify::{NotFound, classify};
use crate::store::metadata::{self, is_tombstone, object_info};
use crate::store::{
    BlobStore, Listing, ObjectInfo, StoreError, StoreResult, StoredObject, VersionPage,
};

/// Keys from secret files (`AWS_*_FILE`), in place of the standard AWS credential chain.
impl From<S3Keys> for aws_sdk_s3::config::Credentials {
    fn from(keys: S3Keys) -> Self {
        Self::new(
            keys.access_key_id,
            keys.secret_access_key,
            None,
            None,
            "secret-files",
        )
    }
}

/// The bucket the blobs live in.
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// The bucket keeps versions: a delete first writes an empty version carrying its
    /// blobproxy version, so the history lists deletes in order (S3's own delete markers
    /// carry no metadata, and servers differ in how they order them among versions).
    versioned: bool,
}

impl S3Store {
    /// Builds a client from the standard AWS credential chain (env, profile, IMDS) plus our
    /// endpoint. `credentials` replaces the chain (tests pass the S3 server's keys this way).
    pub async fn connect(
        settings: &S3Settings,
        credentials: Option<aws_sdk_s3::config::Credentials>,
    ) -> anyhow::Result<Self> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(20))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()))
            .timeout_config(timeouts);
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader.load().await;
        // No CRC32 of every body unless an operation requires one (TLS already protects the
        // bytes in transit): with the SHA-256 of the signature (see `put`), hashing a large
        // blob twice cost more CPU than sending it.
        let mut config = aws_sdk_s3::config::Builder::from(&shared).request_checksum_calculation(
            aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
        );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            versioned: false,
        })
    }

    /// Reads an object: its newest version, or the version S3 calls `version_id`.
    pub(super) async fn open_object(
        &self,
        key: &BlobKey,
        version_id: Option<&str>,
    ) -> StoreResult<Option<StoredObject>> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) => return classify(e).map_or(Ok(None), Err),
        };
        if is_tombstone(object.metadata()) {
            return Ok(None);
        }
        let info = object_info(object.metadata());
        let body = futures::stream::unfold(object.body, |mut body| async move {
            body.try_next().await.transpose().map(|chunk| (chunk, body))
        })
        .map(|chunk| {
            chunk.map_err(|e| StoreError::transient(format!("reading the object body: {e}")))
        });
        Ok(Some(StoredObject {
            content_type: object
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            extension: info.extension,
            version: info.version,
            length: object.content_length.unwrap_or_default().max(0) as u64,
            body: body.boxed(),
        }))
    }

    /// The metadata of an object (its newest version, or the version S3 calls `version_id`),
    /// and whether it is a delete's mark.
    pub(super) async fn describe_object(
        &self,
        key: &BlobKey,
        version_id: Option<&str>,
    ) -> StoreResult<Option<(ObjectInfo, bool)>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
        {
            Ok(head) => Ok(Some((
                object_info(head.metadata()),
                is_tombstone(head.metadata()),
            ))),
            Err(e) => classify(e).map_or(Ok(None), Err),
        }
    }

    /// For operations on the bucket, a 404 means the bucket is gone: retrying cannot help.
    pub(super) fn bucket_missing(&self, _: NotFound) -> StoreError {
        StoreError::Permanent(format!("bucket {} does not exist", self.bucket))
    }
}

/// One attempt, no retry of the SDK's own, for the drain's stores and deletes: the drain
/// retries them itself (`jobs/turn.rs`), a short turn at a time, so that a key S3 keeps
/// failing for holds a worker slot for one request, not for the SDK's backoff (seconds).
fn drain_attempt() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(1))
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    #[tracing::instrument(name = "s3.put_object", skip_all,
        fields(%key, version = blob.version, size = blob.data.len(), otel.kind = "client"))]
    async fn put(&self, key: &BlobKey, blob: &Blob) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(blob.data.clone()))
            .content_type(&blob.content_type)
            .set_metadata(Some(metadata::of_blob(&blob.extension, blob.version)))
            .customize()
            .config_override(drain_attempt())
            // The body is not part of the signature (UNSIGNED-PAYLOAD, as presigned uploads
            // are): the headers still are. Saves a SHA-256 pass over every blob.
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        Ok(())
    }

    #[tracing::instrument(name = "s3.delete_object", skip_all,
        fields(%key, version, otel.kind = "client"))]
    async fn delete(&self, key: &BlobKey, version: u64) -> Result<(), StoreError> {
        if self.versioned {
            self.mark_deleted(key, version).await?;
        }
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .customize()
            .config_override(drain_attempt())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(e) {
                Ok(e) => Err(e),
                Err(NotFound) => Ok(()),
            },
        }
    }

    #[tracing::instrument(name = "s3.get_object", skip_all, fields(%key, otel.kind = "client"))]
    async fn open(&self, key: &BlobKey) -> Result<Option<StoredObject>, StoreError> {
        self.open_object(key, None).await
    }

    #[tracing::instrument(name = "s3.head_object", skip_all, fields(%key, otel.kind = "client"))]
    async fn describe(&self, key: &BlobKey) -> Result<Option<ObjectInfo>, StoreError> {
        let described = self.describe_object(key, None).await?;
        Ok(described.and_then(|(info, tombstone)| (!tombstone).then_some(info)))
    }

    async fn list(&self, prefix: &str, after: Option<&str>, max: usize) -> StoreResult<Listing> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(max as i32);
        if !prefix.is_empty() {
            request = request.prefix(prefix);
        }
        if let Some(after) = after {
            request = request.start_after(after);
        }
        let page = request
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0).max(0) as u64)))
            .collect();
        Ok(Listing {
            objects,
            truncated: page.is_truncated().unwrap_or(false),
        })
    }

    async fn versions(
        &self,
        key: &BlobKey,
        after: Option<&str>,
        max: usize,
    ) -> StoreResult<VersionPage> {
        self.list_versions(key, after, max).await
    }

    async fn open_version(&self, key: &BlobKey, version: u64) -> StoreResult<Option<StoredObject>> {
        self.find_version(key, version).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| classify(e).unwrap_or_else(|e| self.bucket_missing(e)))?;
        Ok(())
    }
}
