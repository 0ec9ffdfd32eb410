//! `StoreError` and how an S3 answer is classed: worth retrying, or not.

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store is down or slow: retry with backoff.
    #[error("S3 is unavailable: {message}")]
    Transient {
        message: String,
        /// The server asked us to wait this long (a `Retry-After` header).
        retry_after: Option<Duration>,
    },
    /// Retrying the same request cannot help (403, a missing bucket...).
    #[error("S3 refused the request: {0}")]
    Permanent(String),
}

impl StoreError {
    pub(super) fn transient(message: impl Into<String>) -> Self {
        StoreError::Transient {
            message: message.into(),
            retry_after: None,
        }
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

/// Statuses S3 (or a proxy in front of it) answers while briefly unable.
const TRANSIENT_STATUSES: &[u16] = &[429, 500, 502, 503, 504];

/// What an S3 answer means for the caller: `None` for a missing object (404, `NoSuchKey`).
/// Only answers known to pass are transient; anything else (501 `NotImplemented`, a 400 the
/// request will always get) is permanent, so the key is dead-lettered instead of retried
/// forever.
pub(super) fn classify_answer(
    code: &str,
    status: u16,
    retry_after: Option<Duration>,
    text: String,
) -> Option<StoreError> {
    if code == "NoSuchKey" || status == 404 {
        None
    } else if TRANSIENT_STATUSES.contains(&status) || TRANSIENT_CODES.contains(&code) {
        Some(StoreError::Transient {
            message: text,
            retry_after,
        })
    } else {
        Some(StoreError::Permanent(text))
    }
}

/// Classes an SDK error; `Err(NotFound)` for a missing object, so each operation says what a 404
/// means for it (no such key, or no such bucket).
pub(super) fn classify<E>(
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Result<StoreError, NotFound>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = aws_sdk_s3::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let retry_after = service
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let code = service.err().code().unwrap_or_default();
            classify_answer(code, service.raw().status().as_u16(), retry_after, text)
                .ok_or(NotFound)
        }
        // The client refused to build the request (a key it cannot carry, say): sending the
        // same request again cannot help.
        SdkError::ConstructionFailure(_) => Ok(StoreError::Permanent(text)),
        // Connection refused, DNS, timeouts, truncated responses: the store is unreachable.
        _ => Ok(StoreError::transient(text)),
    }
}

/// S3 answered 404.
#[derive(Debug)]
pub(super) struct NotFound;

#[cfg(test)]
mod tests {
    use super::*;

    fn class(code: &str, status: u16) -> &'static str {
        match classify_answer(code, status, None, String::new()) {
            None => "not found",
            Some(StoreError::Transient { .. }) => "transient",
            Some(StoreError::Permanent(_)) => "permanent",
        }
    }

    #[test]
    fn missing_objects_are_not_errors() {
        assert_eq!(class("NoSuchKey", 404), "not found");
        assert_eq!(class("", 404), "not found");
    }

    #[test]
    fn overload_and_server_errors_are_transient() {
        assert_eq!(class("SlowDown", 503), "transient");
        assert_eq!(class("", 500), "transient");
        assert_eq!(class("", 429), "transient");
        assert_eq!(class("RequestTimeout", 400), "transient");
    }

    #[test]
    fn refusals_and_unknown_answers_are_permanent() {
        assert_eq!(class("AccessDenied", 403), "permanent");
        assert_eq!(class("InvalidArgument", 400), "permanent");
        assert_eq!(class("NotImplemented", 501), "permanent");
        assert_eq!(class("", 505), "permanent");
    }

    #[test]
    fn retry_after_is_kept() {
        let asked = Some(Duration::from_secs(3));
        match classify_answer("SlowDown", 503, asked, String::new()) {
            Some(StoreError::Transient { retry_after, .. }) => assert_eq!(retry_after, asked),
            _ => panic!("not transient"),
        }
    }
}
