//! Each operation's error answers, from one table here and the error table in
//! `error/codes.rs`, so a code and its status are written once.

use std::collections::BTreeMap;

use utoipa::Modify;
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

use crate::http::error::ErrorCode::{self, *};

/// What a write can answer besides its own input errors: its `Idempotency-Key`'s, and its
/// dependencies'.
const WRITE_FAILURES: &[ErrorCode] = &[
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    Unauthorized,
    CacheFull,
    RedisUnavailable,
    S3Unavailable,
    PersistTimeout,
    MirrorTimeout,
    ReplicaAckTimeout,
];
/// What a read can answer.
const READ_FAILURES: &[ErrorCode] = &[
    InvalidKey,
    Unauthorized,
    NotFound,
    RedisUnavailable,
    S3Unavailable,
];

/// Every documented operation's error codes: (method, path, its own, those it shares with
/// operations of its kind).
pub(super) const ROUTE_ERRORS: &[(&str, &str, &[ErrorCode], &[ErrorCode])] = &[
    (
        "post",
        "/put/",
        &[
            InvalidJson,
            InvalidBase64,
            InvalidKey,
            InvalidExtension,
            InvalidQuery,
            IncompleteBody,
            BlobTooLarge,
            PayloadTooLarge,
            UnsupportedMediaType,
            KeyBusy,
            UploadInterrupted,
        ],
        WRITE_FAILURES,
    ),
    (
        "put",
        "/blobs/{key}",
        &[
            InvalidKey,
            InvalidExtension,
            InvalidContentType,
            InvalidQuery,
            IncompleteBody,
            BlobTooLarge,
            KeyBusy,
            UploadInterrupted,
            PresignedUrlInvalid,
            PresignedUrlExpired,
            PresigningDisabled,
        ],
        WRITE_FAILURES,
    ),
    (
        "delete",
        "/blobs/{key}",
        &[InvalidKey, InvalidQuery, NotFound],
        WRITE_FAILURES,
    ),
    (
        "get",
        "/remove/{key}",
        &[InvalidKey, InvalidQuery, NotFound],
        WRITE_FAILURES,
    ),
    (
        "get",
        "/get/{key}",
        &[InvalidQuery, VersionNotFound],
        READ_FAILURES,
    ),
    (
        "get",
        "/blobs/{key}",
        &[
            InvalidQuery,
            VersionNotFound,
            RangeNotSatisfiable,
            PresignedUrlInvalid,
            PresignedUrlExpired,
            PresigningDisabled,
        ],
        READ_FAILURES,
    ),
    (
        "get",
        "/history/{key}",
        &[InvalidQuery, HistoryDisabled],
        READ_FAILURES,
    ),
    (
        "get",
        "/blobs",
        &[InvalidQuery],
        &[Unauthorized, RedisUnavailable, S3Unavailable],
    ),
    (
        "post",
        "/presign",
        &[
            InvalidJson,
            InvalidKey,
            PayloadTooLarge,
            UnsupportedMediaType,
            PresigningDisabled,
        ],
        &[Unauthorized],
    ),
    ("get", "/status", &[], &[Unauthorized, RedisUnavailable]),
    ("get", "/readyz", &[], &[NotReady, ShuttingDown]),
];

/// Adds each operation's error answers, one per status, naming every code it may carry.
pub(super) struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (method, path, own, shared) in ROUTE_ERRORS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let operation = match *method {
                "get" => item.get.as_mut(),
                "put" => item.put.as_mut(),
                "post" => item.post.as_mut(),
                "delete" => item.delete.as_mut(),
                _ => None,
            };
            let Some(operation) = operation else { continue };
            let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
            for code in own.iter().chain(shared.iter()) {
                by_status
                    .entry(code.status().as_u16())
                    .or_default()
                    .push(*code);
            }
            for (status, codes) in by_status {
                let description = codes
                    .iter()
                    .map(|c| format!("`{}`: {}", c.as_str(), c.when()))
                    .collect::<Vec<_>>()
                    .join("; ");
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build();
                operation
                    .responses
                    .responses
                    .insert(status.to_string(), response.into());
            }
        }
    }
}
