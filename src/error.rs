//! `ApiError`: the only error type that knows HTTP. Every error answer is JSON
//! `{"code": "<stable_snake_case>", "msg": "<sentence>"}`; codes never change once published.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, error::JsonPayloadError};
use serde::Serialize;

use crate::cache::CacheError;
use crate::domain::InvalidInput;
use crate::service::ServiceError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("{0}")]
    InvalidBase64(String),
    #[error("{0}")]
    InvalidKey(String),
    #[error("{0}")]
    InvalidExtension(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    InvalidContentType(String),
    #[error("the request body is larger than the {0} bytes a blob of the maximum size needs")]
    BodyTooLarge(usize),
    #[error("{0}")]
    BlobTooLarge(String),
    #[error("no blob with key {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("Redis is out of memory; retry later: {0}")]
    CacheFull(String),
    #[error("Redis is unavailable: {0}")]
    RedisUnavailable(String),
    #[error("S3 is unavailable: {0}")]
    S3Unavailable(String),
    #[error(
        "stored in Redis and queued for S3, but not yet in S3 after {secs} s; it will be stored \
         without further action"
    )]
    PersistTimeout {
        key: String,
        version: u64,
        secs: u64,
    },
    /// Another upload of the key (a worker's, or another large write) did not end in time.
    #[error("{0}")]
    KeyBusy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable, machine-readable (e.g. `not_found`, `invalid_base64`).
    pub code: &'a str,
    /// A sentence for people.
    pub msg: String,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidQuery(_) => "invalid_query",
            ApiError::InvalidBase64(_) => "invalid_base64",
            ApiError::InvalidKey(_) => "invalid_key",
            ApiError::InvalidExtension(_) => "invalid_extension",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::InvalidContentType(_) => "invalid_content_type",
            ApiError::BodyTooLarge(_) => "payload_too_large",
            ApiError::BlobTooLarge(_) => "blob_too_large",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::CacheFull(_) => "cache_full",
            ApiError::RedisUnavailable(_) => "redis_unavailable",
            ApiError::S3Unavailable(_) => "s3_unavailable",
            ApiError::PersistTimeout { .. } => "persist_timeout",
            ApiError::KeyBusy(_) => "key_busy",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Maps the extractor's JSON errors; `limit` is the body limit in force.
    pub fn from_json(err: &JsonPayloadError, limit: usize) -> Self {
        match err {
            JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::BodyTooLarge(limit)
            }
            JsonPayloadError::Deserialize(e) => {
                ApiError::InvalidJson(format!("the body is not the expected JSON: {e}"))
            }
            other => ApiError::InvalidJson(format!("cannot read the body: {other}")),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidBase64(_)
            | ApiError::InvalidKey(_)
            | ApiError::InvalidExtension(_)
            | ApiError::InvalidContentType(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooLarge(_) | ApiError::BlobTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::CacheFull(_) | ApiError::RedisUnavailable(_) | ApiError::S3Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::PersistTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::KeyBusy(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self.status_code(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::CONFLICT
        ) {
            response.insert_header(("Retry-After", "1"));
        }
        if let ApiError::PersistTimeout { key, version, .. } = self {
            // The write did happen: say so in a form a client can act on.
            return response.json(serde_json::json!({
                "code": self.code(),
                "msg": self.to_string(),
                "key": key,
                "version": version,
                "persisted": false,
            }));
        }
        response.json(ErrorBody {
            code: self.code(),
            msg: self.to_string(),
        })
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        match e {
            InvalidInput::Key(_) => ApiError::InvalidKey(e.to_string()),
            InvalidInput::Extension(_) => ApiError::InvalidExtension(e.to_string()),
            InvalidInput::Base64(_) => ApiError::InvalidBase64(e.to_string()),
            InvalidInput::ContentType(_) => ApiError::InvalidContentType(e.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(invalid) => invalid.into(),
            ServiceError::TooLarge { .. } => ApiError::BlobTooLarge(e.to_string()),
            ServiceError::NotFound(key) => ApiError::NotFound(key),
            ServiceError::Cache(CacheError::OutOfMemory(m)) => ApiError::CacheFull(m),
            ServiceError::Cache(CacheError::Unavailable(m)) => ApiError::RedisUnavailable(m),
            ServiceError::Cache(CacheError::Protocol(m)) => ApiError::Internal(m),
            ServiceError::Store(StoreError::NotFound) => ApiError::NotFound(String::new()),
            ServiceError::KeyBusy(_) => ApiError::KeyBusy(e.to_string()),
            ServiceError::Body(m) => ApiError::InvalidJson(format!("cannot read the body: {m}")),
            // ApiError's message already says "S3 is unavailable".
            ServiceError::Store(StoreError::Transient { message, .. }) => {
                ApiError::S3Unavailable(message)
            }
            ServiceError::Store(e @ StoreError::Permanent(_)) => {
                ApiError::S3Unavailable(e.to_string())
            }
        }
    }
}
