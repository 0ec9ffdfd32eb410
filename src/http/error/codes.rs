//! The one table of error codes: every code the API answers, its status, and when. The
//! handlers, the OpenAPI document and the README's table come from it.

use actix_web::http::StatusCode;

/// Defines [`ErrorCode`] from the table below: one line per code.
macro_rules! error_codes {
    ($($variant:ident = $name:literal, $status:ident, $when:literal;)*) => {
        /// Every code the API can answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode { $($variant),* }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code's row: its name, its status, and when it is answered.
            fn row(self) -> (&'static str, StatusCode, &'static str) {
                match self { $(ErrorCode::$variant => ($name, StatusCode::$status, $when)),* }
            }
        }
    };
}

// The table: code, status, when it is answered.
error_codes! {
    InvalidJson = "invalid_json", BAD_REQUEST, "malformed JSON, a missing or ill-typed field";
    InvalidBase64 = "invalid_base64", BAD_REQUEST, "`data` is not base64";
    InvalidKey = "invalid_key", BAD_REQUEST, "the key breaks the key rules";
    InvalidExtension = "invalid_extension", BAD_REQUEST, "the extension breaks the extension rules";
    InvalidContentType = "invalid_content_type", BAD_REQUEST, "a raw PUT's `Content-Type` is not a media type";
    InvalidIdempotencyKey = "invalid_idempotency_key", BAD_REQUEST, "`Idempotency-Key` is not 1 to 255 visible ASCII characters";
    IdempotencyKeyReused = "idempotency_key_reused", UNPROCESSABLE_ENTITY, "the write's `Idempotency-Key` named another write (another key or other bytes) within the last minute; nothing was written";
    InvalidQuery = "invalid_query", BAD_REQUEST, "`wc` other than 0/1, a bad `limit`, `cursor` or `version`";
    IncompleteBody = "incomplete_body", BAD_REQUEST, "the body ended before its `Content-Length` (the client broke off)";
    BodyTimeout = "body_timeout", REQUEST_TIMEOUT, "the body did not arrive within `BLOBPROXY_BODY_TIMEOUT_SECS`, or stalled for `BLOBPROXY_BODY_IDLE_SECS`";
    MalformedRequest = "malformed_request", BAD_REQUEST, "the request is not valid HTTP/1.1: a malformed, conflicting or duplicate header (`Content-Length`...)";
    HeadersTooLarge = "headers_too_large", REQUEST_HEADER_FIELDS_TOO_LARGE, "the request's headers are too large or too many";
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, "the request's headers did not arrive within 5 s";
    Unauthorized = "unauthorized", UNAUTHORIZED, "API key missing or wrong (`WWW-Authenticate: Bearer`)";
    PresignedUrlInvalid = "presigned_url_invalid", FORBIDDEN, "a presigned URL that was changed, is for another key, was signed for another method or by another secret, or lacks a part; nothing was read or written";
    PresignedUrlExpired = "presigned_url_expired", FORBIDDEN, "a presigned URL past its `expires`; nothing was read or written";
    PresigningDisabled = "presigning_disabled", FORBIDDEN, "`POST /presign` or a presigned URL on a deployment without `BLOBPROXY_PRESIGN_SECRET`";
    OriginNotAllowed = "origin_not_allowed", FORBIDDEN, "a CORS preflight from an origin not in `BLOBPROXY_CORS_ORIGINS`";
    NotFound = "not_found", NOT_FOUND, "the key is neither cached nor in S3, or was deleted";
    VersionNotFound = "version_not_found", NOT_FOUND, "`?version=`: the bucket does not keep that version of the key (never written, overwritten in Redis before it was drained, a delete, or removed)";
    HistoryDisabled = "history_disabled", CONFLICT, "`/history` while the bucket keeps no versions (`BLOBPROXY_S3_VERSIONING`)";
    NoRoute = "no_route", NOT_FOUND, "unknown path";
    MethodNotAllowed = "method_not_allowed", METHOD_NOT_ALLOWED, "a method a path does not take; `Allow` lists those it does";
    KeyBusy = "key_busy", CONFLICT, "a large (written-through) write waited 30 s for another upload of the same key; nothing was written";
    UploadInterrupted = "upload_interrupted", CONFLICT, "a large (written-through) write lost the key's lease to another writer before it completed; retry it";
    BlobTooLarge = "blob_too_large", PAYLOAD_TOO_LARGE, "the blob is over `BLOBPROXY_MAX_BLOB_BYTES`";
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, "a JSON body larger than any blob of the maximum size needs";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "a JSON write without `Content-Type: application/json`";
    RangeNotSatisfiable = "range_not_satisfiable", RANGE_NOT_SATISFIABLE, "a raw GET's `Range` is outside the blob";
    Internal = "internal", INTERNAL_SERVER_ERROR, "a bug: Redis answered what no script of ours returns";
    RedisUnavailable = "redis_unavailable", SERVICE_UNAVAILABLE, "Redis is down; nothing was written";
    CacheFull = "cache_full", SERVICE_UNAVAILABLE, "Redis is full (`maxmemory`); nothing was written";
    S3Unavailable = "s3_unavailable", SERVICE_UNAVAILABLE, "S3 is down or refused; nothing was written";
    NotReady = "not_ready", SERVICE_UNAVAILABLE, "`/readyz`: Redis or S3 does not answer";
    ShuttingDown = "shutting_down", SERVICE_UNAVAILABLE, "`/readyz`: the replica is stopping (it still serves meanwhile)";
    PersistTimeout = "persist_timeout", GATEWAY_TIMEOUT, "`wc=1` or `wc=all` and the primary store did not get the write in time; the write stands";
    MirrorTimeout = "mirror_timeout", GATEWAY_TIMEOUT, "`wc=all` and a mirror store did not get the write in time; the write stands and reaches it later";
    ReplicaAckTimeout = "replica_ack_timeout", GATEWAY_TIMEOUT, "fewer Redis replicas than `BLOBPROXY_REDIS_REPLICA_ACKS` confirmed the write within `BLOBPROXY_REDIS_REPLICA_ACK_TIMEOUT_MS`; the write stands on the primary";
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    pub fn status(self) -> StatusCode {
        self.row().1
    }

    /// When the code is answered, for the OpenAPI document and the README.
    pub fn when(self) -> &'static str {
        self.row().2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(seen.insert(name), "{name} twice");
        }
    }

    #[test]
    fn the_readme_table_lists_every_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        for code in ErrorCode::ALL {
            let row = readme
                .lines()
                .find(|l| l.starts_with('|') && l.contains(&format!("`{}`", code.as_str())))
                .unwrap_or_else(|| panic!("README has no row for {}", code.as_str()));
            assert!(
                row.starts_with(&format!("| {} |", code.status().as_u16())),
                "README row of {} does not start with its status: {row}",
                code.as_str()
            );
        }
    }
}
