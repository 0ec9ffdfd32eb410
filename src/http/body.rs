//! Reading a request body with a limit, before any bytes are kept: the limit follows
//! `BLOBPROXY_MAX_BLOB_BYTES`, and an oversized body is refused as soon as it is known to be.

use actix_web::{HttpRequest, web};
use bytes::BytesMut;
use futures::StreamExt as _;

use crate::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes with `too_large(limit)`.
pub async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    too_large: impl Fn(usize) -> ApiError,
) -> Result<bytes::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::InvalidJson(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
