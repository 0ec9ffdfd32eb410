//! The raw fast path: `PUT /blobs/<key>` with the bytes as the body and `GET`/`HEAD
//! /blobs/<key>` answering the bytes, with `Content-Type`, `ETag` (`If-None-Match` -> 304) and
//! single `Range` requests (206/416). No base64, no JSON around the bytes, no copy of them.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::body::{Body, TimedBody, read_up_to};
use super::history::ReadParams;
use super::presigning::PresignParams;
use super::range::{RangeAnswer, byte_range, etag, matches_etag, requested_range};
use super::write::{
    WriteHeaders, WriteParams, WriteResponse, apply_write_concern, idempotency_key, written_answer,
};
use super::{HttpSettings, KeyPath};
use crate::domain::{Extension, content_type};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::{BlobService, Opened};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawPutParams {
    /// Extension to record (the JSON API's `extension`).
    #[serde(default)]
    #[param(max_length = 32, pattern = "^[A-Za-z0-9._-]*$")]
    ext: Option<String>,
    /// Write concern: `0` (in Redis and queued), `1` (in the primary store) or `all` (in the
    /// primary store and every mirror store); see the JSON write's `wc`.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(0|1|all)$")]
    wc: Option<String>,
}

/// Store a blob sent as the raw body; its Content-Type is kept.
#[utoipa::path(put, path = "/blobs/{key}", tag = "raw",
    params(("key" = String, Path, description = "The key; may contain /"), RawPutParams, WriteHeaders, PresignParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Stored (ETag header: the version)", body = WriteResponse)),
    security(("api_key" = []), ("presigned" = [])))]
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn put(
    service: web::Data<BlobService>,
    settings: web::Data<HttpSettings>,
    params: web::Query<RawPutParams>,
    KeyPath(key): KeyPath,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let concern = WriteParams {
        wc: params.wc.clone(),
    }
    .concern()?;
    let request = idempotency_key(&req)?;
    let extension = Extension::parse(params.ext.clone().unwrap_or_default())?;
    let sent_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let content_type = content_type(sent_type, &extension)?;
    let limits = service.limits();
    let too_large = |max| {
        ApiError::new(
            ErrorCode::BlobTooLarge,
            format!("the blob is over the limit of {max} bytes"),
        )
    };
    let body = read_up_to(
        &req,
        TimedBody::new(payload, settings.body_timeouts),
        limits.max_blob_bytes,
        limits.write_through_bytes,
        too_large,
    )
    .await?;
    let stored = match body {
        Body::Whole(data) => {
            service
                .put(key, &extension, &content_type, &data, request.as_ref())
                .await?
        }
        Body::Large { head, rest } => {
            service
                .write_through(key, &extension, &content_type, head, rest.into_stream())
                .await?
        }
    };
    let persisted = apply_write_concern(&service, &settings, concern, &stored).await?;
    let mut created = HttpResponse::Created();
    created.insert_header((header::ETAG, etag(stored.version)));
    let body = WriteResponse::stored(&stored, &extension, persisted);
    Ok(written_answer(created, &stored, &body))
}

/// Read a blob's bytes, with its Content-Type, ETag (If-None-Match), and single Range requests.
/// `HEAD` answers the same headers without the body.
#[utoipa::path(get, path = "/blobs/{key}", tag = "raw",
    params(("key" = String, Path, description = "The key; may contain /"), ReadParams, PresignParams),
    responses((status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range"),
        (status = 304, description = "If-None-Match matched the ETag")),
    security(("api_key" = []), ("presigned" = [])))]
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn get(
    service: web::Data<BlobService>,
    params: web::Query<ReadParams>,
    KeyPath(key): KeyPath,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let read = match params.version {
        None => service.open(&key).await?,
        Some(version) => service.open_version(&key, version).await?,
    };
    let (opened, served_by) = (read.opened, read.served_by);
    let (version, extension, content_type, total) = match &opened {
        Opened::Whole(blob) => (
            blob.version,
            blob.extension.clone(),
            blob.content_type.clone(),
            blob.data.len() as u64,
        ),
        Opened::Streaming(object) => (
            object.version,
            object.extension.clone(),
            object.content_type.clone(),
            object.length,
        ),
    };
    let etag = etag(version);
    let headers = req.headers();
    let if_none_match = headers
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok());
    if matches_etag(if_none_match, &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let range = requested_range(
        header_text(header::RANGE),
        header_text(header::IF_RANGE),
        &etag,
        total,
    );
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(("X-Blob-Version", version.to_string()))
        .insert_header(("X-Blob-Extension", extension))
        .insert_header(("X-Blob-Store", served_by.header_value()))
        // Stored bytes are the writer's, not ours: a browser must never run them in this
        // origin (where /docs lives). `sandbox` gives a page a unique origin and no scripts;
        // `nosniff` (on every answer) stops a guess that turns bytes into HTML.
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"))
        .content_type(content_type);
    // The bytes to send: `start..end`, end exclusive.
    let (start, end) = match range {
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
        RangeAnswer::Unsatisfiable => return Err(ApiError::range_not_satisfiable(total)),
    };
    Ok(match opened {
        Opened::Whole(blob) => response.body(blob.data.slice(start as usize..end as usize)),
        Opened::Streaming(object) => {
            response
                .no_chunking(end - start)
                .streaming(byte_range(object.body, start, end))
        }
    })
}
