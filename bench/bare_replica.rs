//! The least a replica built on this stack (actix-web, redis-rs) can do: for a GET hit, one
//! `HGET` of the blob's bytes from blobproxy's own record, answered as is; for a PUT, one `SET`
//! of the body (no version, no index of dirty keys, no job: nothing a worker could drain). No
//! key rules, no headers beyond the length, no middleware, no metrics. `bench/bench.py` runs
//! two of them behind the project's nginx config beside blobproxy's replicas: the `bare
//! replica` rows are the ceilings for this stack, measured in the same run as the ideal proxy.
//!
//!     cargo run --release --example bare_replica -- BIND_ADDR REDIS_URL
//!
//! Like `blobproxy serve`, each HTTP thread (one per core) has its own Redis connection.

use actix_web::{App, HttpResponse, HttpServer, web};
use redis::aio::ConnectionManager;

/// Where blobproxy keeps a key's record in single-node Redis (`src/cache/mod.rs`, `Names`), and
/// the record's field that holds the bytes (`src/cache/records.rs`).
const RECORD_PREFIX: &str = "bp:blob:";
const DATA_FIELD: &str = "d";

async fn get(redis: web::Data<ConnectionManager>, key: web::Path<String>) -> HttpResponse {
    let mut conn = redis.get_ref().clone();
    let data: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("HGET")
        .arg(format!("{RECORD_PREFIX}{key}"))
        .arg(DATA_FIELD)
        .query_async(&mut conn)
        .await;
    match data {
        Ok(Some(data)) => HttpResponse::Ok().body(data),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

async fn put(
    redis: web::Data<ConnectionManager>,
    key: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let mut conn = redis.get_ref().clone();
    let stored: redis::RedisResult<()> = redis::cmd("SET")
        .arg(format!("bare:{key}"))
        .arg(body.as_ref())
        .query_async(&mut conn)
        .await;
    match stored {
        Ok(()) => HttpResponse::Created().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(bind), Some(redis_url)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_replica BIND_ADDR REDIS_URL");
        std::process::exit(2);
    };
    let client = redis::Client::open(redis_url).map_err(std::io::Error::other)?;
    actix_web::rt::System::new().block_on(
        HttpServer::new(move || {
            let client = client.clone();
            App::new()
                .data_factory(move || ConnectionManager::new(client.clone()))
                // Bodies up to the benchmark's largest (1 MiB), like BLOBPROXY_MAX_BLOB_BYTES.
                .app_data(web::PayloadConfig::new(16 << 20))
                .route("/blobs/{key:.*}", web::get().to(get))
                .route("/blobs/{key:.*}", web::put().to(put))
        })
        .bind(bind)?
        .run(),
    )
}
