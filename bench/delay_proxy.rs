//! A proxy that holds every request for a fixed time before it forwards it, unchanged (Host
//! included, so SigV4 signatures still verify), to an S3 server on loopback: S3 as far away as
//! a real one, for the benchmark's drain-latency rows (bench/bench.py).
//!
//! `cargo run --release --example delay_proxy -- LISTEN_PORT UPSTREAM_PORT DELAY_MS`

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

struct Upstream {
    http: reqwest::Client,
    port: u16,
    delay: Duration,
}

async fn forward(
    req: HttpRequest,
    body: web::Bytes,
    upstream: web::Data<Upstream>,
) -> HttpResponse {
    tokio::time::sleep(upstream.delay).await;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("http://127.0.0.1:{}{path}", upstream.port);
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut request = upstream.http.request(method, url).body(body);
    for (name, value) in req.headers() {
        request = request.header(name.as_str(), value.as_bytes());
    }
    match request.send().await {
        Ok(answer) => {
            let mut response = HttpResponse::build(
                actix_web::http::StatusCode::from_u16(answer.status().as_u16()).unwrap(),
            );
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response.insert_header((name.as_str(), value.as_bytes()));
                }
            }
            response.body(answer.bytes().await.unwrap_or_default())
        }
        Err(e) => HttpResponse::BadGateway().body(e.to_string()),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("LISTEN_PORT UPSTREAM_PORT DELAY_MS"))
        .collect();
    let [listen, upstream, delay_ms] = args[..] else {
        panic!("usage: delay_proxy LISTEN_PORT UPSTREAM_PORT DELAY_MS");
    };
    actix_web::rt::System::new().block_on(async move {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap();
        let upstream = web::Data::new(Upstream {
            http,
            port: upstream as u16,
            delay: Duration::from_millis(delay_ms),
        });
        HttpServer::new(move || {
            App::new()
                .app_data(upstream.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(forward))
        })
        .workers(1)
        .max_connections(100_000)
        .bind(("127.0.0.1", listen as u16))?
        .run()
        .await
    })
}
