//! The JSON blob API of the service it replaces: `POST /put/` and `GET /get/<key>`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::{BlobKey, Extension, decode_base64, encode_base64};
use crate::error::ApiError;
use crate::service::BlobService;

#[derive(Deserialize)]
pub struct PutRequest {
    key: String,
    #[serde(default)]
    extension: Option<String>,
    data: String,
}

#[derive(Serialize)]
struct PutResponse<'a> {
    msg: &'static str,
    key: &'a str,
    extension: &'a str,
    size: usize,
    version: u64,
}

#[derive(Serialize)]
struct GetResponse<'a> {
    key: &'a str,
    extension: &'a str,
    data: String,
    size: usize,
    version: u64,
}

#[tracing::instrument(skip_all, fields(key = %body.key))]
pub async fn put_json(
    service: web::Data<BlobService>,
    body: web::Json<PutRequest>,
) -> Result<HttpResponse, ApiError> {
    let PutRequest {
        key,
        extension,
        data,
    } = body.into_inner();
    let key = BlobKey::parse(key)?;
    let extension = Extension::parse(extension.unwrap_or_default())?;
    // Reject an oversized blob before decoding it.
    let most = crate::domain::base64_len(service.max_blob_bytes);
    if data.len() > most + 2 {
        return Err(ApiError::BlobTooLarge(format!(
            "the blob is over the limit of {} bytes",
            service.max_blob_bytes
        )));
    }
    let bytes = decode_base64(&data)?;
    drop(data);
    let stored = service.put(key, &extension, &bytes).await?;
    Ok(HttpResponse::Created().json(PutResponse {
        msg: "stored",
        key: stored.key.as_str(),
        extension: extension.as_str(),
        size: stored.size,
        version: stored.version,
    }))
}

/// The key is the rest of the raw path, percent-decoded, so keys may hold `/`, `?` or `%`.
pub fn key_from_path(req: &HttpRequest, prefix: &str) -> Result<BlobKey, ApiError> {
    let raw = req.uri().path().strip_prefix(prefix).unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::InvalidKey("invalid key: the key is not valid UTF-8".into()))?;
    Ok(BlobKey::parse(decoded.into_owned())?)
}

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
