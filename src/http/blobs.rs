//! The JSON blob API of the service it replaces: `POST /put/`, `GET /get/<key>`, and deletes
//! (`DELETE /blobs/<key>`, `GET /remove/<key>`).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::HttpSettings;
use crate::domain::{BlobKey, Extension, decode_base64, encode_base64};
use crate::error::{ApiError, ErrorBody};
use crate::service::{BlobService, Stored, WriteConcern};

/// A blob, base64-encoded.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PutRequest {
    key: String,
    #[serde(default)]
    extension: Option<String>,
    data: String,
}

/// `?wc=0` (default): answer once the write is in Redis and queued; `?wc=1`: once it is in S3.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Write concern: 0 answers once the write is in Redis and queued; 1 once it is in S3.
    #[serde(default)]
    pub(super) wc: Option<u8>,
}

impl WriteParams {
    pub(super) fn concern(&self) -> Result<WriteConcern, ApiError> {
        match self.wc {
            None | Some(0) => Ok(WriteConcern::Cached),
            Some(1) => Ok(WriteConcern::Persisted),
            Some(other) => Err(ApiError::InvalidQuery(format!(
                "wc must be 0 (in Redis and queued) or 1 (in S3), not {other}"
            ))),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct WriteResponse<'a> {
    pub msg: &'static str,
    pub key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    pub version: u64,
    /// Whether S3 already holds this version (always true when `wc=1` answered 2xx).
    pub persisted: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
struct GetResponse<'a> {
    key: &'a str,
    extension: &'a str,
    data: String,
    size: usize,
    version: u64,
}

/// Applies the write concern: with `wc=1`, waits for S3 or answers 504 (the write stands).
pub(super) async fn persisted(
    service: &BlobService,
    settings: &HttpSettings,
    concern: WriteConcern,
    stored: &Stored,
) -> Result<bool, ApiError> {
    if stored.in_s3 {
        return Ok(true);
    }
    if concern == WriteConcern::Cached {
        return Ok(false);
    }
    if service
        .wait_persisted(&stored.key, stored.version, settings.wc_timeout)
        .await?
    {
        Ok(true)
    } else {
        Err(ApiError::PersistTimeout {
            key: stored.key.to_string(),
            version: stored.version,
            secs: settings.wc_timeout.as_secs(),
        })
    }
}

/// Store a blob sent as JSON with base64 data.
#[utoipa::path(post, path = "/put/", tag = "blobs", params(WriteParams), request_body = PutRequest,
    responses((status = 201, description = "Stored: readable at once from every replica", body = WriteResponse),
        (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody),
        (status = 413, description = "Blob over BLOBPROXY_MAX_BLOB_BYTES (blob_too_large, payload_too_large)", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 409, description = "A blob over BLOBPROXY_WRITE_THROUGH_BYTES waited too long for another upload of the key (key_busy; Retry-After is set)", body = ErrorBody),
        (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody),
        (status = 504, description = "wc=1 and S3 did not get it in time; the write stands (persist_timeout)", body = ErrorBody)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %body.key))]
pub async fn put_json(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    body: web::Json<PutRequest>,
) -> Result<HttpResponse, ApiError> {
    let concern = params.concern()?;
    let PutRequest {
        key,
        extension,
        data,
    } = body.into_inner();
    let key = BlobKey::parse(key)?;
    let extension = Extension::parse(extension.unwrap_or_default())?;
    // Reject an oversized blob before decoding it.
    if data.len() > crate::domain::base64_len(service.max_blob_bytes) + 2 {
        return Err(ApiError::BlobTooLarge(format!(
            "the blob is over the limit of {} bytes",
            service.max_blob_bytes
        )));
    }
    let bytes = decode_base64(&data)?;
    drop(data);
    let content_type = extension.content_type();
    let stored = service.put(key, &extension, &content_type, &bytes).await?;
    let persisted = persisted(&service, &settings, concern, &stored).await?;
    Ok(HttpResponse::Created().json(WriteResponse {
        msg: "stored",
        key: stored.key.as_str(),
        extension: Some(extension.as_str()),
        size: Some(stored.size),
        version: stored.version,
        persisted,
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// List blobs in key order, including writes not yet in S3 and excluding deleted keys.
#[utoipa::path(get, path = "/blobs", tag = "blobs", params(ListParams),
    responses((status = 200, description = "One page", body = crate::listing::Page), (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    service: web::Data<BlobService>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    use crate::listing::{DEFAULT_LIMIT, MAX_LIMIT};
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = match &params.cursor {
        Some(cursor) => Some(crate::listing::decode_cursor(cursor).ok_or_else(|| {
            ApiError::InvalidQuery("cursor is not one this service handed out".into())
        })?),
        None => None,
    };
    let page = crate::listing::list(&service, &params.prefix, after.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The key is the rest of the raw path, percent-decoded, so keys may hold `/`, `?` or `%`.
pub fn key_from_path(req: &HttpRequest, prefix: &str) -> Result<BlobKey, ApiError> {
    let raw = req.uri().path().strip_prefix(prefix).unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::InvalidKey("invalid key: the key is not valid UTF-8".into()))?;
    Ok(BlobKey::parse(decoded.into_owned())?)
}

/// Read a blob as JSON with base64 data. The rest of the path is the key (percent-decoded).
#[utoipa::path(get, path = "/get/{key}", tag = "blobs", params(("key" = String, Path, description = "The key; may contain /")),
    responses((status = 200, description = "The bytes last written", body = GetResponse),
        (status = 404, description = "No such key (not_found)", body = ErrorBody), (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key))]
pub async fn get_json(
    service: web::Data<BlobService>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = key_from_path(&req, "/get/")?;
    tracing::Span::current().record("key", key.as_str());
    let blob = service.get(&key).await?;
    Ok(HttpResponse::Ok().json(GetResponse {
        key: key.as_str(),
        extension: &blob.extension,
        data: encode_base64(&blob.data),
        size: blob.data.len(),
        version: blob.version,
    }))
}

/// Delete a blob: every replica answers 404 at once; a worker removes the S3 object.
#[utoipa::path(delete, path = "/blobs/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), WriteParams),
    responses((status = 200, description = "Deleted", body = WriteResponse),
        (status = 404, description = "No such key (not_found)", body = ErrorBody), (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody),
        (status = 504, description = "wc=1 and S3 did not get it in time; the delete stands", body = ErrorBody)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key))]
pub async fn delete(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let concern = params.concern()?;
    let prefix = if req.path().starts_with("/remove/") {
        "/remove/"
    } else {
        "/blobs/"
    };
    let key = key_from_path(&req, prefix)?;
    tracing::Span::current().record("key", key.as_str());
    let stored = service.delete(key).await?;
    let persisted = persisted(&service, &settings, concern, &stored).await?;
    Ok(HttpResponse::Ok().json(WriteResponse {
        msg: "deleted",
        key: stored.key.as_str(),
        extension: None,
        size: None,
        version: stored.version,
        persisted,
    }))
}

/// The seed service's delete: same as `DELETE /blobs/{key}`.
#[utoipa::path(get, path = "/remove/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), WriteParams),
    responses((status = 200, description = "Deleted", body = WriteResponse),
        (status = 404, description = "No such key (not_found)", body = ErrorBody), (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    delete(service, settings, params, req).await
}
