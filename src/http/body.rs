//! Reading a request body within bounds, before any bytes are kept: a size limit (refused as
//! soon as it is known to be passed) and a time limit (the whole body within
//! `BLOBPROXY_BODY_TIMEOUT_SECS`, and never `BLOBPROXY_BODY_IDLE_SECS` without a byte), so a
//! client that trickles or stalls cannot hold a connection and its buffer for ever.
//! A body over `BLOBPROXY_WRITE_THROUGH_BYTES` is not read whole: the rest streams to S3.

use std::time::Duration;

use actix_web::{HttpRequest, web};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _};
use tokio::time::Instant;

use crate::http::error::ApiError;
use crate::service::ServiceError;

/// How long a body may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeouts {
    /// The whole body.
    pub total: Duration,
    /// The longest pause between two bytes.
    pub idle: Duration,
}

/// A request body that must arrive within its [`BodyTimeouts`], counted from the request.
pub struct TimedBody {
    payload: web::Payload,
    deadline: Instant,
    idle: Duration,
}

impl TimedBody {
    pub fn new(payload: web::Payload, timeouts: BodyTimeouts) -> Self {
        Self {
            payload,
            deadline: Instant::now() + timeouts.total,
            idle: timeouts.idle,
        }
    }

    /// The next chunk; an error when the body broke off or is late.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ServiceError> {
        let now = Instant::now();
        let wait = self.idle.min(self.deadline.saturating_duration_since(now));
        match tokio::time::timeout(wait, self.payload.next()).await {
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(e))) => Err(ServiceError::IncompleteBody(e.to_string())),
            Err(_) if wait < self.idle => Err(ServiceError::BodyTimeout(
                "the body did not arrive within BLOBPROXY_BODY_TIMEOUT_SECS".into(),
            )),
            Err(_) => Err(ServiceError::BodyTimeout(format!(
                "no byte of the body arrived for {} s",
                self.idle.as_secs()
            ))),
        }
    }

    /// The rest of the body as a stream, still bounded in time.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, ServiceError>> + Unpin {
        Box::pin(futures::stream::unfold(self, |mut body| async move {
            body.next_chunk()
                .await
                .transpose()
                .map(|chunk| (chunk, body))
        }))
    }
}

/// A body read up to a threshold: whole when it fits, else what was read and the rest.
pub enum Body {
    Whole(Bytes),
    /// Larger than the threshold: `head` was read, `rest` still streams from the client.
    Large {
        head: Bytes,
        rest: TimedBody,
    },
}

/// Reads the body, refusing more than `limit` bytes with `too_large(limit)`; stops once it is
/// over `threshold` bytes and hands back the rest as a stream, so a large body never sits
/// whole in memory.
pub async fn read_up_to(
    req: &HttpRequest,
    mut body: TimedBody,
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
    let mut read = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(threshold + 1));
    while let Some(chunk) = body.next_chunk().await? {
        if read.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        read.extend_from_slice(&chunk);
        if read.len() > threshold {
            return Ok(Body::Large {
                head: read.freeze(),
                rest: body,
            });
        }
    }
    Ok(Body::Whole(read.freeze()))
}
