//! `GET /openapi.json`, generated from the handlers' annotations, and `GET /docs`: Swagger UI
//! served from files built into the binary (no CDN, works offline).
//!
//! Handlers document their successes; [`errors`] adds their error answers from the error table,
//! and [`schemas`] what attributes cannot say (the key's rules, raw bytes). The document served
//! matches the running configuration: bearer security only when an API key is set.

mod errors;
mod schemas;

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{health, history, json, listing, presigning, raw, status};
use errors::ErrorResponses;
use schemas::Schemas;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "blobproxy",
        description = "Stores binary blobs by key in S3 behind a Redis write-back cache; every write is readable at once."
    ),
    paths(
        json::put_json, json::get_json, json::delete, json::remove, listing::list, history::history,
        raw::put, raw::get, presigning::presign, status::status, status::metrics, health::healthz, health::readyz
    ),
    components(schemas(crate::http::error::ErrorBody)),
    modifiers(&BearerAuth, &ErrorResponses, &Schemas),
    tags(
        (name = "blobs", description = "The JSON API (base64 data)"),
        (name = "raw", description = "The fast path: bytes in, bytes out"),
        (name = "operations", description = "Health, backlog and metrics"),
    )
)]
pub struct ApiDoc;

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
        // The other way into GET/PUT /blobs/{key}: a presigned URL (POST /presign).
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "presigned",
                SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("signature"))),
            );
    }
}

/// The document for this configuration: without an API key, no operation asks for one (nor
/// can answer 401).
pub fn document(secured: bool) -> utoipa::openapi::OpenApi {
    let mut openapi = ApiDoc::openapi();
    if !secured {
        if let Some(components) = openapi.components.as_mut() {
            components.security_schemes.clear();
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in schemas::operations(item) {
                operation.security = None;
                operation.responses.responses.remove("401");
            }
        }
    }
    openapi
}

pub fn routes(cfg: &mut web::ServiceConfig, secured: bool) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document(secured)))
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

    fn spec(secured: bool) -> serde_json::Value {
        serde_json::to_value(document(secured)).unwrap()
    }

    #[test]
    fn every_error_table_row_names_a_documented_operation() {
        let spec = spec(true);
        for (method, path, _, _) in errors::ROUTE_ERRORS {
            assert!(spec["paths"][path][method].is_object(), "{method} {path}");
        }
    }

    #[test]
    fn the_json_get_documents_only_what_it_can_answer() {
        let spec = spec(true);
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

    #[test]
    fn security_is_declared_only_when_an_api_key_is_set() {
        let (open, secured) = (spec(false), spec(true));
        assert!(
            open["components"]["securitySchemes"]
                .as_object()
                .is_none_or(|s| s.is_empty())
        );
        let put = &open["paths"]["/put/"]["post"];
        assert!(put["security"].is_null() && put["responses"]["401"].is_null());
        assert!(secured["components"]["securitySchemes"]["api_key"].is_object());
        let put = &secured["paths"]["/put/"]["post"];
        assert!(put["security"].is_array() && put["responses"]["401"].is_object());
    }

    #[test]
    fn parameters_and_bodies_carry_the_servers_bounds() {
        let spec = spec(false);
        let list = spec["paths"]["/blobs"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let limit = list.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(
            (
                limit["schema"]["minimum"].as_f64(),
                limit["schema"]["maximum"].as_f64()
            ),
            (Some(1.0), Some(1000.0))
        );
        let raw_put = &spec["paths"]["/blobs/{key}"]["put"];
        let key = &raw_put["parameters"][0];
        assert_eq!(
            (key["name"].as_str(), key["schema"]["maxLength"].as_u64()),
            (Some("key"), Some(1024))
        );
        let wc = raw_put["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "wc")
            .unwrap();
        assert_eq!(wc["schema"]["pattern"], "^(0|1|all)$");
        let body = &raw_put["requestBody"];
        assert_ne!(body["required"], true);
        assert_eq!(
            body["content"]["application/octet-stream"]["schema"]["format"],
            "binary"
        );
    }
}
