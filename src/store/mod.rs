//! The S3 side: where blobs end up. One object per key, with the extension and version in the
//! object's metadata so a cache miss can rebuild the exact record.
//!
//! Errors are classified for the caller: `NotFound` (answer 404), `Transient` (retry with
//! backoff: the store is down or slow), `Permanent` (retrying the same request cannot help).

use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedMultipartUpload;
pub use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;

use crate::config::Settings;
use crate::domain::{Blob, BlobKey};

const META_EXTENSION: &str = "extension";
const META_VERSION: &str = "version";

/// An object being read from S3: what the blob's record would hold, and the bytes as a stream.
pub struct StoredObject {
    pub content_type: String,
    pub extension: String,
    pub version: u64,
    pub length: u64,
    body: ByteStream,
}

impl StoredObject {
    /// Reads the whole object into one buffer.
    pub async fn read_all(self) -> Result<Blob, StoreError> {
        let data: Bytes = self
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient {
                message: format!("reading the object body: {e}"),
                retry_after: None,
            })?
            .into_bytes();
        Ok(Blob {
            data,
            extension: self.extension,
            content_type: self.content_type,
            version: self.version,
        })
    }

    /// The bytes as they arrive from S3, never held whole.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<Bytes, aws_sdk_s3::primitives::ByteStreamError>> {
        futures::stream::unfold(self.body, |mut body| async move {
            body.try_next().await.transpose().map(|chunk| (chunk, body))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found in S3")]
    NotFound,
    #[error("S3 is unavailable: {message}")]
    Transient {
        message: String,
        /// The server asked us to wait this long (a `Retry-After` header).
        retry_after: Option<Duration>,
    },
    #[error("S3 refused the request: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }
}

/// Error codes S3 answers while overloaded or briefly unable; worth retrying.
const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "ThrottlingException",
    "Throttling",
];

fn classify<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = aws_sdk_s3::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            let retry_after = service
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if code == "NoSuchKey" || status == 404 {
                StoreError::NotFound
            } else if status >= 500 || status == 429 || TRANSIENT_CODES.contains(&code) {
                StoreError::Transient {
                    message: text,
                    retry_after,
                }
            } else {
                StoreError::Permanent(text)
            }
        }
        // Connection refused, DNS, timeouts, truncated responses: the store is unreachable.
        _ => StoreError::Transient {
            message: text,
            retry_after: None,
        },
    }
}

/// Credentials from Docker/Swarm secret files: `AWS_ACCESS_KEY_ID_FILE` and
/// `AWS_SECRET_ACCESS_KEY_FILE` name files holding the keys. `None` when neither is set, so the
/// standard AWS chain applies.
pub fn credentials_from_secret_files() -> anyhow::Result<Option<aws_sdk_s3::config::Credentials>> {
    let read = |var: &str| -> anyhow::Result<Option<String>> {
        let Some(path) = std::env::var_os(var) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {var}={}", path.to_string_lossy()))?;
        Ok(Some(text.trim().to_owned()))
    };
    match (
        read("AWS_ACCESS_KEY_ID_FILE")?,
        read("AWS_SECRET_ACCESS_KEY_FILE")?,
    ) {
        (None, None) => Ok(None),
        (Some(id), Some(secret)) => Ok(Some(aws_sdk_s3::config::Credentials::new(
            id,
            secret,
            None,
            None,
            "secret-files",
        ))),
        _ => anyhow::bail!(
            "set both AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE, or neither"
        ),
    }
}

/// The bucket the blobs live in.
#[derive(Clone)]
pub struct BlobStore {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl BlobStore {
    /// Builds a client from the standard AWS credential chain (env, profile, IMDS) plus our
    /// endpoint. `credentials` replaces the chain (tests pass the S3 server's keys this way).
    pub async fn connect(
        settings: &Settings,
        credentials: Option<aws_sdk_s3::config::Credentials>,
    ) -> anyhow::Result<Self> {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(20))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.s3_region.clone()))
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
        if let Some(endpoint) = &settings.s3_endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        Ok(Self {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: settings.s3_bucket.clone(),
        })
    }

    /// Creates the bucket when it does not exist yet.
    pub async fn ensure_bucket(&self) -> anyhow::Result<()> {
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(anyhow::Error::new(e)).with_context(|| {
                format!(
                    "cannot create bucket BLOBPROXY_S3_BUCKET={} (check BLOBPROXY_S3_ENDPOINT and the AWS credentials)",
                    self.bucket
                )
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(%key, version = blob.version, size = blob.data.len()))]
    pub async fn put(&self, key: &BlobKey, blob: &Blob) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .body(ByteStream::from(blob.data.clone()))
            .content_type(&blob.content_type)
            .metadata(META_EXTENSION, &blob.extension)
            .metadata(META_VERSION, blob.version.to_string())
            .customize()
            // The body is not part of the signature (UNSIGNED-PAYLOAD, as presigned uploads
            // are): the headers still are. Saves a SHA-256 pass over every blob.
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| match classify(e) {
                // A 404 on PUT means the bucket is gone: retrying cannot help.
                StoreError::NotFound => {
                    StoreError::Permanent(format!("bucket {} does not exist", self.bucket))
                }
                other => other,
            })?;
        Ok(())
    }

    /// Starts a multipart upload of `key` carrying the metadata of `version`; returns its id.
    pub async fn start_upload(
        &self,
        key: &BlobKey,
        content_type: &str,
        extension: &str,
        version: u64,
    ) -> Result<String, StoreError> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .metadata(META_EXTENSION, extension)
            .metadata(META_VERSION, version.to_string())
            .send()
            .await
            .map_err(classify)?;
        upload
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError::Permanent("S3 answered no upload id".into()))
    }

    /// Uploads part `number` (from 1) of a multipart upload; returns what completing it needs.
    pub async fn upload_part(
        &self,
        key: &BlobKey,
        upload_id: &str,
        number: i32,
        data: Bytes,
    ) -> Result<CompletedPart, StoreError> {
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(classify)?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(part.e_tag().map(str::to_owned))
            .build())
    }

    /// Makes the uploaded parts the object, in one step: readers see the old or the new object.
    pub async fn complete_upload(
        &self,
        key: &BlobKey,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    /// Drops an unfinished multipart upload and its parts (best effort).
    pub async fn abort_upload(&self, key: &BlobKey, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(%key, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "cannot abort a multipart upload");
        }
    }

    /// Removes the object; a missing object is not an error (deletes are idempotent).
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Up to `max` objects starting with `prefix`, after `start_after`, in key order: (key,
    /// size) pairs, and whether S3 has more.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<(Vec<(String, u64)>, bool), StoreError> {
        let mut request = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .max_keys(max as i32);
        if !prefix.is_empty() {
            request = request.prefix(prefix);
        }
        if let Some(after) = start_after {
            request = request.start_after(after);
        }
        let page = request.send().await.map_err(classify)?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|o| Some((o.key()?.to_owned(), o.size().unwrap_or(0).max(0) as u64)))
            .collect();
        Ok((objects, page.is_truncated().unwrap_or(false)))
    }

    /// The extension and version S3 keeps for `key` (a listing has neither); `None` when there
    /// is no such object.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn describe(&self, key: &BlobKey) -> Result<Option<(String, u64)>, StoreError> {
        let head = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(classify)
        {
            Ok(head) => head,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let metadata = head.metadata().cloned().unwrap_or_default();
        Ok(Some((
            metadata.get(META_EXTENSION).cloned().unwrap_or_default(),
            metadata
                .get(META_VERSION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )))
    }

    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn get(&self, key: &BlobKey) -> Result<Blob, StoreError> {
        self.open(key).await?.read_all().await
    }

    /// Starts reading an object: its metadata now, its bytes as they arrive.
    #[tracing::instrument(skip_all, fields(%key))]
    pub async fn open(&self, key: &BlobKey) -> Result<StoredObject, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(classify)?;
        let metadata = object.metadata().cloned().unwrap_or_default();
        Ok(StoredObject {
            content_type: object
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_owned(),
            extension: metadata.get(META_EXTENSION).cloned().unwrap_or_default(),
            version: metadata
                .get(META_VERSION)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            length: object.content_length().unwrap_or_default().max(0) as u64,
            body: object.body,
        })
    }

    /// Cheap reachability probe for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
