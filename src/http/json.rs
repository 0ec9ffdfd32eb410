//! The JSON blob API of the service it replaces: `POST /put/`, `GET /get/<key>`, and deletes
//! (`DELETE /blobs/<key>`, `GET /remove/<key>`). Error answers are documented from the error
//! table (see `http/openapi/`).

use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::body::{Body, TimedBody, read_up_to};
use super::history::ReadParams;
use super::write::{
    WriteHeaders, WriteParams, WriteResponse, apply_write_concern, idempotency_key, written_answer,
};
use super::{HttpSettings, KeyPath};
use crate::domain::{BlobKey, Extension, base64_len, decode_base64, encode_base64};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::BlobService;

/// A blob, base64-encoded.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PutRequest {
    /// The key (see the key rules); may contain `/`.
    key: String,
    /// Empty or up to 32 of `A-Z a-z 0-9 . _ -`.
    #[serde(default)]
    #[schema(max_length = 32, pattern = "^[A-Za-z0-9._-]*$")]
    extension: Option<String>,
    /// The bytes, standard base64 (padding optional).
    #[schema(pattern = "^[A-Za-z0-9+/]*={0,2}$")]
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
#[utoipa::path(post, path = "/put/", tag = "blobs", params(WriteParams, WriteHeaders), request_body = PutRequest,
    responses((status = 201, description = "Stored: readable at once from every replica", body = WriteResponse)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key))]
pub async fn put_json(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let concern = params.concern()?;
    let request = idempotency_key(&req)?;
    let body = read_json(&req, payload, &settings).await?;
    let (key, extension, bytes) = parse_put(&body, service.limits().max_blob_bytes)?;
    drop(body);
    tracing::Span::current().record("key", key.as_str());
    super::middleware::record_shard(&req, &service, &key);
    let content_type = extension.content_type();
    let stored = service
        .put(key, &extension, &content_type, &bytes, request.as_ref())
        .await?;
    let persisted = apply_write_concern(&service, &settings, concern, &stored).await?;
    let body = WriteResponse::stored(&stored, &extension, persisted);
    Ok(written_answer(HttpResponse::Created(), &stored, &body))
}

/// The key, extension and bytes of a JSON write's body, or why it is refused. Pure: the
/// fuzzer (`fuzz/`) drives it with arbitrary bytes.
pub fn parse_put(
    body: &[u8],
    max_blob_bytes: usize,
) -> Result<(BlobKey, Extension, Vec<u8>), ApiError> {
    // serde would also read a struct from a JSON array (`["key", "", "aGk="]`): only the
    // documented object is a write.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the body must be a JSON object with key, data and an optional extension",
        ));
    }
    let PutRequest {
        key,
        extension,
        data,
    } = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body is not the expected JSON: {e}"),
        )
    })?;
    let key = BlobKey::parse(key)?;
    let extension = Extension::parse(extension.unwrap_or_default())?;
    // Refuse an oversized blob before decoding it.
    if data.len() > base64_len(max_blob_bytes) + 2 {
        return Err(ApiError::new(
            ErrorCode::BlobTooLarge,
            format!("the blob is over the limit of {max_blob_bytes} bytes"),
        ));
    }
    let bytes = decode_base64(&data)?;
    if bytes.len() > max_blob_bytes {
        return Err(ApiError::new(
            ErrorCode::BlobTooLarge,
            format!("the blob is over the limit of {max_blob_bytes} bytes"),
        ));
    }
    Ok((key, extension, bytes))
}

/// The JSON body of a write, read within the size and time bounds of every body.
pub(super) async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    settings: &HttpSettings,
) -> Result<Bytes, ApiError> {
    let is_json = matches!(req.mime_type(), Ok(Some(mime))
        if mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"));
    if !is_json {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        ));
    }
    let limit = settings.json_limit;
    let too_large = |limit| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body is larger than the {limit} bytes a blob of the maximum size \
                 needs"
            ),
        )
    };
    let body = TimedBody::new(payload, settings.body_timeouts);
    match read_up_to(req, body, limit, limit, too_large).await? {
        Body::Whole(bytes) => Ok(bytes),
        Body::Large { .. } => Err(too_large(limit)),
    }
}

/// Read a blob as JSON with base64 data. The rest of the path is the key (percent-decoded).
#[utoipa::path(get, path = "/get/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), ReadParams),
    responses((status = 200, description = "The bytes last written (or of `version`)", body = GetResponse)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn get_json(
    service: web::Data<BlobService>,
    params: web::Query<ReadParams>,
    KeyPath(key): KeyPath,
) -> Result<HttpResponse, ApiError> {
    let read = match params.version {
        None => service.open(&key).await?,
        Some(version) => service.open_version(&key, version).await?,
    };
    let blob = read.opened.read_all().await?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Blob-Store", read.served_by.header_value()))
        .json(GetResponse {
            key: key.as_str(),
            extension: &blob.extension,
            data: encode_base64(&blob.data),
            size: blob.data.len(),
            version: blob.version,
        }))
}

/// Delete a blob: every replica answers 404 at once; a worker removes the S3 object.
#[utoipa::path(delete, path = "/blobs/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), WriteParams, WriteHeaders),
    responses((status = 200, description = "Deleted", body = WriteResponse)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %key.0))]
pub async fn delete(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    key: KeyPath,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let concern = params.concern()?;
    let request = idempotency_key(&req)?;
    let stored = service.delete(key.0, request.as_ref()).await?;
    let persisted = apply_write_concern(&service, &settings, concern, &stored).await?;
    let body = WriteResponse::deleted(&stored, persisted);
    Ok(written_answer(HttpResponse::Ok(), &stored, &body))
}

/// The seed service's delete: same as `DELETE /blobs/{key}`.
#[utoipa::path(get, path = "/remove/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), WriteParams, WriteHeaders),
    responses((status = 200, description = "Deleted", body = WriteResponse)),
    security(("api_key" = [])))]
pub async fn remove(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<WriteParams>,
    key: KeyPath,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    delete(service, settings, params, key, req).await
}
