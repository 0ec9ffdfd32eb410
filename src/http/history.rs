//! `GET /history/<key>?limit=&cursor=`: the versions of a key a versioned bucket keeps, newest
//! first; reading one of them is `?version=` on the reads (see [`ReadParams`]).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::KeyPath;
use super::listing::page_limit;
use crate::http::error::{ApiError, ErrorCode};
use crate::service::{BlobService, HistoryStart};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// `?version=` of a read.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadParams {
    /// Read this version (a write's `version`, listed by `/history/{key}`) instead of the newest.
    #[serde(default)]
    pub version: Option<u64>,
}

/// List a key's versions, newest first: the one still waiting in Redis (`persisted: false`),
/// then those the versioned bucket keeps, deletes included.
#[utoipa::path(get, path = "/history/{key}", tag = "blobs",
    params(("key" = String, Path, description = "The key; may contain /"), HistoryParams),
    responses((status = 200, description = "One page of versions", body = crate::service::History)),
    security(("api_key" = [])))]
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn history(
    service: web::Data<BlobService>,
    params: web::Query<HistoryParams>,
    KeyPath(key): KeyPath,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(params.limit)?;
    let start = match &params.cursor {
        None => HistoryStart::Top,
        Some(cursor) => HistoryStart::from_cursor(cursor).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                "cursor is not one this service handed out",
            )
        })?,
    };
    let page = service.history(&key, start, limit).await?;
    Ok(HttpResponse::Ok().json(page))
}
