//! `GET /status`: the drain backlog and the dead letters, for operators.

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::service::BlobService;

pub async fn status(service: web::Data<BlobService>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service.status().await?))
}
