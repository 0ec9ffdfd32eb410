//! What the JSON and raw writes (and deletes) share: the write concern and the answer.

use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::{Deserialize, Serialize};

use super::HttpSettings;
use crate::domain::{Extension, IdempotencyKey};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::{BlobService, Stored};

/// How far a write must have gone before it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteConcern {
    /// In Redis (AOF-backed) and queued for S3.
    Cached,
    /// In the primary store (this version or a newer one).
    Persisted,
    /// In the primary store and in every mirror store.
    Mirrored,
}

/// `?wc=0` (default): answer once the write is in Redis and queued; `?wc=1`: once it is in the
/// primary store; `?wc=all`: once it is in the primary store and every mirror.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Write concern: `0` answers once the write is in Redis and queued; `1` once the primary
    /// store has it; `all` once the primary store and every mirror store have it (the same as
    /// `1` without mirrors). `1` and `all` answer 504 after `BLOBPROXY_WC_TIMEOUT_SECS`; the
    /// write stands.
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(0|1|all)$")]
    pub wc: Option<String>,
}

impl WriteParams {
    pub fn concern(&self) -> Result<WriteConcern, ApiError> {
        match self.wc.as_deref() {
            None | Some("0") => Ok(WriteConcern::Cached),
            Some("1") => Ok(WriteConcern::Persisted),
            Some("all") => Ok(WriteConcern::Mirrored),
            Some(other) => Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "wc must be 0 (in Redis and queued), 1 (in the primary store) or all (in \
                     every store), not {:?}",
                    other.chars().take(16).collect::<String>()
                ),
            )),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WriteResponse<'a> {
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

impl<'a> WriteResponse<'a> {
    pub fn stored(stored: &'a Stored, extension: &'a Extension, persisted: bool) -> Self {
        Self {
            msg: "stored",
            key: stored.key.as_str(),
            extension: Some(extension.as_str()),
            size: Some(stored.size),
            version: stored.version,
            persisted,
        }
    }

    pub fn deleted(stored: &'a Stored, persisted: bool) -> Self {
        Self {
            msg: "deleted",
            key: stored.key.as_str(),
            extension: None,
            size: None,
            version: stored.version,
            persisted,
        }
    }
}

/// The headers a write takes, for the OpenAPI document ([`idempotency_key`] reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct WriteHeaders {
    /// Names this write (1 to 255 visible ASCII characters; nginx sends its request id when
    /// the client sends none). The write is applied once: a repeat within a minute is
    /// answered with the first one's version and `Idempotent-Replayed: true`; the key reused
    /// for another write (another blob key or other bytes) answers 422.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    idempotency_key: Option<String>,
}

/// The write's `Idempotency-Key`, if it sent one (nginx sends its request id there): a write
/// is applied once per key, and a repeat within a minute gets the first one's answer.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "invalid Idempotency-Key: it may hold only visible ASCII characters",
        )
    })?;
    Ok(Some(IdempotencyKey::parse(value)?))
}

/// A write's answer: `status` and `body`, with `Idempotent-Replayed: true` when the write
/// repeated an earlier request (nothing was written again).
pub fn written_answer(
    mut status: HttpResponseBuilder,
    stored: &Stored,
    body: &WriteResponse<'_>,
) -> HttpResponse {
    if stored.repeated {
        status.insert_header(("Idempotent-Replayed", "true"));
    }
    status.json(body)
}

/// Applies the write concern: with `wc=1`, waits for the primary store, with `wc=all` for the
/// mirrors too, or answers 504 (the write stands). Returns whether the primary store holds it.
pub async fn apply_write_concern(
    service: &BlobService,
    settings: &HttpSettings,
    concern: WriteConcern,
    stored: &Stored,
) -> Result<bool, ApiError> {
    if concern == WriteConcern::Cached {
        return Ok(stored.persisted);
    }
    let timeout = settings.wc_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    if !stored.persisted
        && !service
            .wait_persisted(&stored.key, stored.version, timeout)
            .await?
    {
        return Err(ApiError::persist_timeout(
            stored.key.as_str(),
            stored.version,
            timeout.as_secs(),
        ));
    }
    if concern == WriteConcern::Mirrored {
        let behind = service.wait_mirrored(&stored.key, deadline).await?;
        if !behind.is_empty() {
            return Err(ApiError::mirror_timeout(
                stored.key.as_str(),
                stored.version,
                timeout.as_secs(),
                &behind,
            ));
        }
    }
    Ok(true)
}
