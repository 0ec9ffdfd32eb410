//! `GET /openapi.json`, generated from the handlers' annotations, and `GET /docs`: Swagger UI
//! served from files built into the binary (no CDN, works offline).

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{blobs, health, raw, status};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "blobproxy",
        description = "Stores binary blobs by key in S3 behind a Redis write-back cache; every write is readable at once."
    ),
    paths(
        blobs::put_json, blobs::get_json, blobs::delete, blobs::remove, blobs::list,
        raw::put, raw::get, status::status, status::metrics, health::healthz, health::readyz
    ),
    modifiers(&BearerAuth),
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
