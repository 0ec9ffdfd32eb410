//! `POST /presign` hands out presigned URLs (see [`crate::domain::presigned`]), and
//! [`PresignParams`] reads them back off a request's query, for
//! [`super::middleware::require_api_key`] to let a valid one through without the API key.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::HttpSettings;
use crate::domain::BlobKey;
use crate::domain::presigned::{MAX_EXPIRY, PresignedMethod, Refusal, SignedParts};
use crate::http::error::{ApiError, ErrorCode};

/// The presigned part of a query string (`POST /presign` makes them); a request with them
/// needs no API key.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresignParams {
    /// What the URL was signed for: `GET` (also allows `HEAD`) or `PUT`.
    method: Option<String>,
    /// When the URL stops working, Unix seconds.
    expires: Option<String>,
    /// HMAC-SHA256 of the method, key and expiry with the deployment's presign secret.
    signature: Option<String>,
}

impl PresignParams {
    /// The presigned parameters of `query`; `None` when it has no signature (not presigned).
    pub fn of(query: &str) -> Option<Self> {
        let params: PresignParams = web::Query::from_query(query)
            .map(web::Query::into_inner)
            .unwrap_or_default();
        // An empty `signature=` is no presigned URL: the request is taken as any other.
        let signed = params.signature.as_deref().is_some_and(|s| !s.is_empty());
        signed.then_some(params)
    }

    /// Whether a request for `key` by `method` may go ahead on these parameters.
    pub fn check(
        &self,
        settings: Option<&HttpSettings>,
        method: &str,
        key: &BlobKey,
    ) -> Result<(), ApiError> {
        let presigner = settings
            .and_then(|s| s.presigner.as_ref())
            .ok_or_else(disabled)?;
        let parts = SignedParts {
            method: self.method.as_deref(),
            expires: self.expires.as_deref(),
            signature: self.signature.as_deref(),
        };
        presigner
            .check(&parts, method, key.as_str())
            .map_err(|refusal| {
                let code = match refusal {
                    Refusal::Invalid(_) => ErrorCode::PresignedUrlInvalid,
                    Refusal::Expired(_) => ErrorCode::PresignedUrlExpired,
                };
                ApiError::new(code, refusal.to_string())
            })
    }
}

/// What `POST /presign` takes.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PresignRequest {
    /// The key the URL is for (see the key rules).
    key: String,
    method: PresignedMethod,
    /// Seconds the URL works for: 1 to 604800 (a week).
    #[schema(minimum = 1, maximum = 604800)]
    expires_in: u64,
}

/// Hand out a presigned URL: one key, one method, until a time; usable without the API key.
#[utoipa::path(post, path = "/presign", tag = "raw", request_body = PresignRequest,
    responses((status = 200, description = "The URL", body = crate::domain::presigned::Presigned)),
    security(("api_key" = [])))]
pub async fn presign(
    settings: web::Data<HttpSettings>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = super::json::read_json(&req, payload, &settings).await?;
    let Some(presigner) = &settings.presigner else {
        return Err(disabled());
    };
    let request: PresignRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!(
                "the body must be {{\"key\", \"method\": \"GET\"|\"PUT\", \"expires_in\": seconds}}: {e}"
            ),
        )
    })?;
    let key = BlobKey::parse(request.key)?;
    let lasting = Duration::from_secs(request.expires_in);
    if lasting.is_zero() || lasting > MAX_EXPIRY {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "expires_in must be 1 to 604800 seconds (a week)",
        ));
    }
    let base = match &settings.public_url {
        Some(url) => url.clone(),
        None => {
            let info = req.connection_info();
            format!("{}://{}", info.scheme(), info.host())
        }
    };
    Ok(HttpResponse::Ok().json(presigner.presign(&base, request.method, &key, lasting)))
}

/// The answer when this deployment has no presign secret.
pub fn disabled() -> ApiError {
    ApiError::new(
        ErrorCode::PresigningDisabled,
        "presigned URLs are off: this deployment has no BLOBPROXY_PRESIGN_SECRET",
    )
}
