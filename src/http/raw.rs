//! The raw fast path: `PUT /blobs/<key>` with the bytes as the body and `GET`/`HEAD
//! /blobs/<key>` answering the bytes, with `Content-Type`, `ETag` (`If-None-Match` -> 304) and
//! single `Range` requests (206/416). No base64, no JSON around the bytes, no copy of them.

use std::str::FromStr as _;

use actix_web::http::header::{self, ByteRangeSpec, Range};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::HttpSettings;
use super::blobs::{WriteParams, WriteResponse, key_from_path, persisted};
use super::body::{Body, read_up_to};
use crate::domain::{Extension, content_type};
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::service::{BlobService, Opened};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPutParams {
    /// Extension to record (the JSON API's `extension`).
    #[serde(default)]
    ext: Option<String>,
    /// Write concern: 0 (in Redis and queued) or 1 (in S3).
    #[serde(default)]
    wc: Option<u8>,
}

/// Store a blob sent as the raw body; its Content-Type is kept.
#[utoipa::path(put, path = "/blobs/{key}", tag = "raw",
    params(("key" = String, Path, description = "The key; may contain /"), RawPutParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored (ETag header: the version)", body = WriteResponse),
        (status = 400, description = "Bad input (invalid_json, invalid_base64, invalid_key, invalid_extension, invalid_query)", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 413, description = "Over BLOBPROXY_MAX_BLOB_BYTES", body = ErrorBody), (status = 409, description = "A blob over BLOBPROXY_WRITE_THROUGH_BYTES waited too long for another upload of the key (key_busy; Retry-After is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody),
        (status = 504, description = "wc=1 and S3 did not get it in time; the write stands", body = ErrorBody)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key))]
pub async fn put(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<RawPutParams>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let concern = WriteParams { wc: params.wc }.concern()?;
    let key = key_from_path(&req, "/blobs/")?;
    tracing::Span::current().record("key", key.as_str());
    let extension = Extension::parse(params.ext.clone().unwrap_or_default())?;
    let sent_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let content_type = content_type(sent_type, &extension)?;
    let too_large =
        |max| ApiError::BlobTooLarge(format!("the blob is over the limit of {max} bytes"));
    let body = read_up_to(
        &req,
        payload,
        service.max_blob_bytes,
        service.write_through_bytes,
        too_large,
    )
    .await?;
    let stored = match body {
        Body::Whole(data) => service.put(key, &extension, &content_type, &data).await?,
        Body::Large { head, rest } => {
            service
                .put_through(key, &extension, &content_type, head, rest)
                .await?
        }
    };
    let persisted = persisted(&service, &settings, concern, &stored).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, etag(stored.version)))
        .json(WriteResponse {
            msg: "stored",
            key: stored.key.as_str(),
            extension: Some(extension.as_str()),
            size: Some(stored.size),
            version: stored.version,
            persisted,
        }))
}

/// A strong validator: one version of a key is one exact byte sequence.
fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn matches_etag(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().trim_start_matches("W/"))
        .any(|v| v == "*" || v == etag)
}

/// Read a blob's bytes, with its Content-Type, ETag (If-None-Match), and single Range requests.
/// `HEAD` answers the same headers without the body.
#[utoipa::path(get, path = "/blobs/{key}", tag = "raw",
    params(("key" = String, Path, description = "The key; may contain /")),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range"),
        (status = 304, description = "If-None-Match matched the ETag"),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 416, description = "Range outside the blob", body = ErrorBody), (status = 401, description = "API key missing or wrong (when BLOBPROXY_API_KEY is set)", body = ErrorBody), (status = 503, description = "Redis or S3 unavailable, or Redis full (Retry-After is set)", body = ErrorBody)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key))]
pub async fn get(
    service: web::Data<BlobService>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = key_from_path(&req, "/blobs/")?;
    tracing::Span::current().record("key", key.as_str());
    let (version, extension, content_type, total, body) = match service.open(&key).await? {
        Opened::Whole(blob) => (
            blob.version,
            blob.extension,
            blob.content_type,
            blob.data.len() as u64,
            Bytes(blob.data),
        ),
        Opened::Streaming(object) => (
            object.version,
            object.extension.clone(),
            object.content_type.clone(),
            object.length,
            Stream(object),
        ),
    };
    let etag = etag(version);
    if matches_etag(&req, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(("X-Blob-Version", version.to_string()))
        .insert_header(("X-Blob-Extension", extension))
        .content_type(content_type);
    // The bytes to send: `start..end`, end exclusive.
    let (start, end) = match requested_range(&req, &etag, total) {
        RangeAnswer::Full => (0, total),
        RangeAnswer::Part(start, last) => {
            response
                .status(actix_web::http::StatusCode::PARTIAL_CONTENT)
                .insert_header((
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{last}/{total}"),
                ));
            (start, last + 1)
        }
        RangeAnswer::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{total}")))
                .json(crate::error::ErrorBody {
                    code: "range_not_satisfiable",
                    msg: format!("the blob is {total} bytes long"),
                }));
        }
    };
    Ok(match body {
        Bytes(data) => response.body(data.slice(start as usize..end as usize)),
        Stream(object) => response.no_chunking(end - start).streaming(byte_range(
            object.into_stream(),
            start,
            end,
        )),
    })
}

/// Where a GET's bytes come from.
enum Source {
    Bytes(bytes::Bytes),
    Stream(crate::store::StoredObject),
}
use Source::{Bytes, Stream};

/// Bytes `start..end` of a stream of chunks, passed on as they arrive (a range of a large
/// blob read from S3; the parts before it are read and dropped).
fn byte_range<E>(
    chunks: impl futures::Stream<Item = Result<bytes::Bytes, E>>,
    start: u64,
    end: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, E>> {
    use futures::StreamExt as _;
    chunks
        .scan(0u64, move |offset, chunk| {
            let next = match chunk {
                Err(e) => Some(Some(Err(e))),
                Ok(chunk) => {
                    let (from, to) = (*offset, *offset + chunk.len() as u64);
                    *offset = to;
                    let (low, high) = (start.max(from), end.min(to));
                    if from >= end {
                        None
                    } else if low >= high {
                        Some(None)
                    } else {
                        Some(Some(Ok(
                            chunk.slice((low - from) as usize..(high - from) as usize)
                        )))
                    }
                }
            };
            std::future::ready(next)
        })
        .filter_map(std::future::ready)
}

enum RangeAnswer {
    Full,
    Part(u64, u64),
    Unsatisfiable,
}

/// One byte range is served as 206; several ranges, a stale `If-Range` or a malformed header
/// get the whole blob (as RFC 9110 allows).
fn requested_range(req: &HttpRequest, etag: &str, total: u64) -> RangeAnswer {
    let Some(raw) = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
    else {
        return RangeAnswer::Full;
    };
    if let Some(if_range) = req.headers().get(header::IF_RANGE)
        && if_range.to_str().ok() != Some(etag)
    {
        return RangeAnswer::Full;
    }
    let Ok(Range::Bytes(specs)) = Range::from_str(raw) else {
        return RangeAnswer::Full;
    };
    let [spec]: [ByteRangeSpec; 1] = match specs.try_into() {
        Ok(one) => one,
        Err(_) => return RangeAnswer::Full,
    };
    match spec.to_satisfiable_range(total) {
        Some((start, end)) => RangeAnswer::Part(start, end),
        None => RangeAnswer::Unsatisfiable,
    }
}
