//! The JSON blob API of the service it replaces: `POST /put/`, `GET /get/<key>`, and deletes
//! (`DELETE /blobs/<key>`, `GET /remove/<key>`). Error answers are documented from the error
//! table (see `openapi.rs`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::write::{WriteParams, WriteResponse, apply_write_concern};
use super::{HttpSettings, KeyPath};
use crate::domain::{BlobKey, Extension, base64_len, decode_base64, encode_base64};
use crate::error::{ApiError, ErrorCode};
use crate::service::BlobService;

/// A blob, base64-encoded.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PutRequest {
    key: String,
    #[serde(default)]
    extension: Option<String>,
    data: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct GetResponse<'a> {
    key: &'a str,
    extension: &'a str,
    data: String,
    size: usize,
    version: u64,
}

/// Store a blob sent as JSON with base64 data.
#[utoipa::path(post, path = "/put/", tag = "blobs", params(WriteParams), request_body = PutRequest,
    responses((status = 201, description = "Stored: readable at once from every replica", body = WriteResponse)),
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
    let max = service.limits().max_blob_bytes;
    if data.len() > base64_len(max) + 2 {
        return Err(ApiError::new(
            ErrorCode::BlobTooLarge,
            format!("the blob is over the limit of {max} bytes"),
        ));
    }
    let bytes = decode_base64(&data)?;
    drop(data);
    let content_type = extension.content_type();
    let stored = service.put(key, &extension, &content_type, &bytes).await?;
    let persisted = apply_write_concern(&service, &settings, concern, &stored).await?;
    Ok(HttpResponse::Created().json(WriteResponse::stored(&stored, &extension, persisted)))
}

/// Read a blob as JSON with base64 data. The rest of the path is the key (percent-decoded).
#[utoipa::path(get, path = "/get/{key}", tag = "blobs", params(("key" = String, Path, description = "The key; may contain /")),
    responses((status = 200, description = "The bytes last written", body = GetResponse)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn get_json(
    service: web::Data<BlobService>,
    KeyPath(key): KeyPath,
) -> Result<HttpResponse, ApiError> {
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
    responses((status = 200, description = "Deleted", body = WriteResponse)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %key.0))]
pub async fn delete(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    key: KeyPath,
) -> Result<HttpResponse, ApiError> {
    let concern = params.concern()?;
    let stored = service.delete(key.0).await?;
    let persisted = apply_write_concern(&service, &settings, concern, &stored).await?;
    Ok(HttpResponse::Ok().json(WriteResponse::deleted(&stored, persisted)))
}

/// The seed service's delete: same as `DELETE /blobs/{key}`.
#[utoipa::path(get, path = "/remove/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), WriteParams),
    responses((status = 200, description = "Deleted", body = WriteResponse)),
    security(("api_key" = [])))]
pub async fn remove(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    key: KeyPath,
) -> Result<HttpResponse, ApiError> {
    delete(service, settings, params, key).await
}
