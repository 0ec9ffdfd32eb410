//! Reading a request body with a limit, before any bytes are kept: the limit follows
//! `BLOBPROXY_MAX_BLOB_BYTES`, and an oversized body is refused as soon as it is known to be.
//! A body over `BLOBPROXY_WRITE_THROUGH_BYTES` is not read whole: the rest streams to S3.

use actix_web::{HttpRequest, web};
use bytes::BytesMut;
use futures::StreamExt as _;

use crate::error::{ApiError, incomplete_body};

/// A body read up to a threshold: whole when it fits, else what was read and the rest.
pub enum Body {
    Whole(bytes::Bytes),
    /// Larger than the threshold: `head` was read, `rest` still streams from the client.
    Large {
        head: bytes::Bytes,
        rest: web::Payload,
    },
}

/// Reads the body, refusing more than `limit` bytes with `too_large(limit)`; stops once it is
/// over `threshold` bytes and hands back the rest as a stream, so a large body never sits
/// whole in memory.
pub async fn read_up_to(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    threshold: usize,
    too_large: impl Fn(usize) -> ApiError,
) -> Result<Body, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(threshold + 1));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(incomplete_body)?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
        if body.len() > threshold {
            return Ok(Body::Large {
                head: body.freeze(),
                rest: payload,
            });
        }
    }
    Ok(Body::Whole(body.freeze()))
}
