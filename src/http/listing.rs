//! `GET /blobs?prefix=&limit=&cursor=`: one page of keys, writes not yet in S3 included.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::domain::check_key_chars;
use crate::http::error::{ApiError, ErrorCode};
use crate::service::{BlobService, DEFAULT_LIMIT, MAX_LIMIT, decode_cursor};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only keys starting with this.
    #[serde(default)]
    prefix: String,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// The page size a `limit` asks for (default 100), or why it is refused.
pub(super) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// List blobs in key order, including writes not yet in S3 and excluding deleted keys.
#[utoipa::path(get, path = "/blobs", tag = "blobs", params(ListParams),
    responses((status = 200, description = "One page", body = crate::service::Page)),
    security(("api_key" = [])))]
pub async fn list(
    service: web::Data<BlobService>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(params.limit)?;
    // S3 gets both inside XML and a URL: a character they cannot carry is the client's error,
    // not an outage to retry.
    check_key_chars(&params.prefix)
        .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, format!("prefix: {e}")))?;
    let cursor_error = || {
        ApiError::new(
            ErrorCode::InvalidQuery,
            "cursor is not one this service handed out",
        )
    };
    let after = match &params.cursor {
        Some(cursor) => {
            let after = decode_cursor(cursor).ok_or_else(cursor_error)?;
            check_key_chars(&after).map_err(|_| cursor_error())?;
            Some(after)
        }
        None => None,
    };
    let page = service
        .list(&params.prefix, after.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
