//! `ApiError`: the only error type that knows HTTP, and [`ErrorCode`], the one table of every
//! code the API answers, with its status and when it is answered. The handlers, the OpenAPI
//! document and the README's table all come from that table (a test holds the README to it).
//! Every error answer is JSON `{"code": "<stable_snake_case>", "msg": "<sentence>"}`; codes
//! never change once published.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::domain::InvalidInput;
use crate::service::ServiceError;

mod codes;

pub use codes::ErrorCode;
use codes::ErrorCode::*;

/// Every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Stable, machine-readable (e.g. `not_found`, `invalid_base64`).
    pub code: &'a str,
    /// A sentence for people.
    pub msg: String,
}

/// An error answer: a code from the table, a sentence, and what some codes add.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    msg: String,
    extra: Extra,
    /// What the client is not told (a dependency's own error): logged with the request id.
    detail: Option<String>,
}

#[derive(Debug)]
enum Extra {
    None,
    /// `persist_timeout`: the write happened; say which, in a form a client can act on.
    Written {
        key: String,
        version: u64,
    },
    /// `method_not_allowed`: the `Allow` header.
    Allow(&'static str),
    /// `range_not_satisfiable`: the blob's length, for `Content-Range`.
    Length(u64),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            extra: Extra::None,
            detail: None,
        }
    }

    /// An answer whose cause stays in the log: the client gets `msg` only.
    pub fn hiding(code: ErrorCode, msg: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(code, msg)
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The cause kept out of the answer, for the log.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn persist_timeout(key: &str, version: u64, secs: u64) -> Self {
        Self {
            extra: Extra::Written {
                key: key.to_owned(),
                version,
            },
            ..Self::new(
                PersistTimeout,
                format!(
                    "stored in Redis and queued for S3, but not yet in S3 after {secs} s; it \
                     will be stored without further action"
                ),
            )
        }
    }

    pub fn mirror_timeout(key: &str, version: u64, secs: u64, behind: &[String]) -> Self {
        Self {
            extra: Extra::Written {
                key: key.to_owned(),
                version,
            },
            ..Self::new(
                MirrorTimeout,
                format!(
                    "stored in the primary store, but not yet in mirror {} after {secs} s; it \
                     will get there without further action",
                    behind.join(", ")
                ),
            )
        }
    }

    pub fn replica_ack_timeout(key: &str, version: u64) -> Self {
        Self {
            extra: Extra::Written {
                key: key.to_owned(),
                version,
            },
            ..Self::new(
                ReplicaAckTimeout,
                "stored on the Redis primary, but fewer replicas than required confirmed it in \
                 time; it stands, and a worker will store it in S3",
            )
        }
    }

    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static str) -> Self {
        Self {
            extra: Extra::Allow(allowed),
            ..Self::new(
                MethodNotAllowed,
                format!("{method} is not allowed on {path}; use {allowed}"),
            )
        }
    }

    pub fn range_not_satisfiable(length: u64) -> Self {
        Self {
            extra: Extra::Length(length),
            ..Self::new(
                RangeNotSatisfiable,
                format!("the blob is {length} bytes long"),
            )
        }
    }
}

/// A body that broke off before its end.
pub fn incomplete_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::hiding(
        IncompleteBody,
        "the body ended before it was complete; nothing was written",
        e.to_string(),
    )
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self.code.status(),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::CONFLICT
        ) && !matches!(self.code, NotReady | ShuttingDown)
        {
            response.insert_header(("Retry-After", "1"));
        }
        if matches!(self.code, IncompleteBody | BodyTimeout) {
            // What is left of the body would be read as the next request.
            response.force_close();
        }
        if self.code == Unauthorized {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"blobproxy\""),
            ));
        }
        match &self.extra {
            Extra::None => {}
            Extra::Allow(allowed) => {
                response.insert_header((header::ALLOW, *allowed));
            }
            Extra::Length(length) => {
                response.insert_header((header::CONTENT_RANGE, format!("bytes */{length}")));
            }
            Extra::Written { key, version } => {
                return response.json(serde_json::json!({
                    "code": self.code.as_str(),
                    "msg": self.msg,
                    "key": key,
                    "version": version,
                    "persisted": false,
                }));
            }
        }
        response.json(ErrorBody {
            code: self.code.as_str(),
            msg: self.msg.clone(),
        })
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        let code = match e {
            InvalidInput::Key(_) => InvalidKey,
            InvalidInput::Extension(_) => InvalidExtension,
            InvalidInput::Base64(_) => InvalidBase64,
            InvalidInput::ContentType(_) => InvalidContentType,
            InvalidInput::IdempotencyKey(_) => InvalidIdempotencyKey,
        };
        Self::new(code, e.to_string())
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let (code, hidden) = match &e {
            ServiceError::Invalid(invalid) => return invalid.clone().into(),
            ServiceError::TooLarge { .. } => (BlobTooLarge, None),
            ServiceError::NotFound(_) => (NotFound, None),
            ServiceError::VersionNotFound(..) => (VersionNotFound, None),
            ServiceError::ReplicaAckTimeout { key, version } => {
                return Self::replica_ack_timeout(key, *version);
            }
            ServiceError::HistoryDisabled => (HistoryDisabled, None),
            ServiceError::BadCursor => (InvalidQuery, None),
            ServiceError::KeyBusy(_) => (KeyBusy, None),
            ServiceError::IdempotencyKeyReused => (IdempotencyKeyReused, None),
            ServiceError::UploadInterrupted(_) => (UploadInterrupted, None),
            ServiceError::IncompleteBody(_) => return incomplete_body(&e),
            ServiceError::BodyTimeout(_) => (BodyTimeout, None),
            // A dependency's own words (addresses, bucket, types) stay in the log.
            ServiceError::RedisFull(_) => (CacheFull, Some("Redis is full; nothing was written")),
            ServiceError::RedisUnavailable(_) => (RedisUnavailable, Some("Redis is unavailable")),
            ServiceError::RedisProtocol(_) => (Internal, Some("internal error")),
            ServiceError::S3Unavailable(_) => (
                S3Unavailable,
                Some("S3 is unavailable or refused the request"),
            ),
        };
        match hidden {
            Some(sentence) => Self::hiding(
                code,
                format!("{sentence}; retry later (request id in the log)"),
                error_chain(&e),
            ),
            None => Self::new(code, e.to_string()),
        }
    }
}

/// `e` and each of its sources, outermost first: what the log gets of a dependency's failure.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}

#[cfg(test)]
#[path = "answers_tests.rs"]
mod tests;
