//! `GET /openapi.json`, generated from the handlers' annotations, and `GET /docs`: Swagger UI
//! served from files built into the binary (no CDN, works offline).
//!
//! Handlers document their successes; their error answers come from one table here
//! ([`ROUTE_ERRORS`]) and the error table in `error.rs`, so a code and its status are written
//! once.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{health, json, listing, raw, status};
use crate::error::ErrorCode::{self, *};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "blobproxy",
        description = "Stores binary blobs by key in S3 behind a Redis write-back cache; every write is readable at once."
    ),
    paths(
        json::put_json, json::get_json, json::delete, json::remove, listing::list,
        raw::put, raw::get, status::status, status::metrics, health::healthz, health::readyz
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth, &ErrorResponses),
    tags(
        (name = "blobs", description = "The JSON API (base64 data)"),
        (name = "raw", description = "The fast path: bytes in, bytes out"),
        (name = "operations", description = "Health, backlog and metrics"),
    )
)]
pub struct ApiDoc;

/// What a write can answer besides its own input errors.
const WRITE_FAILURES: &[ErrorCode] = &[
    Unauthorized,
    CacheFull,
    RedisUnavailable,
    S3Unavailable,
    PersistTimeout,
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
const ROUTE_ERRORS: &[(&str, &str, &[ErrorCode], &[ErrorCode])] = &[
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
    ("get", "/get/{key}", &[], READ_FAILURES),
    ("get", "/blobs/{key}", &[RangeNotSatisfiable], READ_FAILURES),
    (
        "get",
        "/blobs",
        &[InvalidQuery],
        &[Unauthorized, RedisUnavailable, S3Unavailable],
    ),
    ("get", "/status", &[], &[Unauthorized, RedisUnavailable]),
    ("get", "/readyz", &[], &[NotReady, ShuttingDown]),
];

/// Adds each operation's error answers, one per status, naming every code it may carry.
struct ErrorResponses;

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

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "api_key",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("Location", "/docs/"))
                    .finish()
            }),
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_table_row_names_a_documented_operation() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (method, path, _, _) in ROUTE_ERRORS {
            assert!(spec["paths"][path][method].is_object(), "{method} {path}");
        }
    }

    #[test]
    fn the_json_get_documents_only_what_it_can_answer() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let responses = &spec["paths"]["/get/{key}"]["get"]["responses"];
        let bad_request = responses["400"]["description"].as_str().unwrap();
        assert!(bad_request.contains("invalid_key"));
        assert!(!bad_request.contains("invalid_base64"), "{bad_request}");
        assert!(
            responses["404"]["description"]
                .as_str()
                .unwrap()
                .contains("not_found")
        );
        assert!(
            responses["503"]["description"]
                .as_str()
                .unwrap()
                .contains("s3_unavailable")
        );
        assert_eq!(
            responses["503"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
    }
}
