//! A fault-injecting HTTP proxy in front of the real S3 server: it forwards every request
//! unchanged (Host included, so SigV4 signatures still verify) and can slow S3 down or refuse
//! chosen keys the way S3 refuses them (403 AccessDenied), without mocking S3 itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

#[derive(Default)]
struct Faults {
    delay: Duration,
    /// Object paths (`/bucket/key`) refused, with the status and S3 error code they get.
    refused: Vec<(String, u16, String)>,
    refused_count: u64,
    /// Every request gets this status and S3 error code, until `allow_all`.
    failing: Option<(u16, String)>,
    /// The next this-many object writes get 503 SlowDown with this `Retry-After` (seconds).
    slow_downs: (u32, u64),
    /// When each object write arrived.
    put_times: Vec<std::time::Instant>,
    /// Per request: the access key id it was signed with, and whether it carried a session
    /// token (`X-Amz-Security-Token`: temporary credentials).
    signers: Vec<(String, bool)>,
}

#[derive(Clone)]
pub struct S3Proxy {
    pub port: u16,
    faults: Arc<Mutex<Faults>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl S3Proxy {
    pub async fn start(upstream_port: u16) -> Self {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let http = reqwest::Client::new();
        let state = (faults.clone(), http, upstream_port);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .default_service(web::to(forward))
        })
        .workers(2)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server);
        tokio::spawn(async move {
            let _ = stopped.await;
            handle.stop(false).await;
        });
        S3Proxy {
            port,
            faults,
            _stop: Arc::new(stop),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request waits this long before it is forwarded.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.lock().unwrap().delay = delay;
    }

    /// Writes and reads of `bucket/key` get 403 AccessDenied until `allow_all`.
    pub fn refuse(&self, bucket: &str, key: &str) {
        self.refuse_with(bucket, key, 403, "AccessDenied");
    }

    /// Writes and reads of `bucket/key` get `status` with the S3 error `code` until `allow_all`.
    pub fn refuse_with(&self, bucket: &str, key: &str, status: u16, code: &str) {
        self.faults.lock().unwrap().refused.push((
            format!("/{bucket}/{key}"),
            status,
            code.to_owned(),
        ));
    }

    /// Every request gets `status` with the S3 error `code` until `allow_all`.
    pub fn fail_every_request(&self, status: u16, code: &str) {
        self.faults.lock().unwrap().failing = Some((status, code.to_owned()));
    }

    pub fn allow_all(&self) {
        let mut faults = self.faults.lock().unwrap();
        faults.refused.clear();
        faults.failing = None;
    }

    /// The next `count` object writes get 503 SlowDown asking to retry after `secs`.
    pub fn slow_down(&self, count: u32, secs: u64) {
        self.faults.lock().unwrap().slow_downs = (count, secs);
    }

    /// When each object write arrived, in order.
    pub fn put_times(&self) -> Vec<std::time::Instant> {
        self.faults.lock().unwrap().put_times.clone()
    }

    /// How many requests were refused so far.
    /// Who signed each request so far: (access key id, whether it carried a session token).
    pub fn signers(&self) -> Vec<(String, bool)> {
        self.faults.lock().unwrap().signers.clone()
    }

    pub fn refused_count(&self) -> u64 {
        self.faults.lock().unwrap().refused_count
    }
}

type State = (Arc<Mutex<Faults>>, reqwest::Client, u16);

async fn forward(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let (faults, http, upstream_port) = state.get_ref();
    let path = percent_encoding::percent_decode_str(req.path())
        .decode_utf8_lossy()
        .into_owned();
    let (delay, refused, slow_down) = {
        let mut faults = faults.lock().unwrap();
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let access_key = header("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .unwrap_or_default()
            .to_owned();
        let token = header("x-amz-security-token").is_some();
        faults.signers.push((access_key, token));
        let refused = faults
            .refused
            .iter()
            .find(|(refused, _, _)| *refused == path)
            .map(|(_, status, code)| (*status, code.clone()))
            .or_else(|| faults.failing.clone());
        if refused.is_some() {
            faults.refused_count += 1;
        }
        let mut slow_down = None;
        // Object writes only (`/bucket/key`), not bucket creation (`/bucket`).
        let object_write =
            req.method() == actix_web::http::Method::PUT && path.trim_matches('/').contains('/');
        if object_write {
            faults.put_times.push(std::time::Instant::now());
        }
        if object_write && faults.slow_downs.0 > 0 {
            faults.slow_downs.0 -= 1;
            slow_down = Some(faults.slow_downs.1);
        }
        (faults.delay, refused, slow_down)
    };
    if let Some(secs) = slow_down {
        return HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", secs.to_string()))
            .content_type("application/xml")
            .body(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                   <Message>Please reduce your request rate.</Message></Error>",
            );
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, code)) = refused {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/xml")
            .body(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{code} (injected by the test proxy)</Message></Error>"
            ));
    }
    let url = format!("http://127.0.0.1:{upstream_port}{}", req.uri());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut upstream = http.request(method, url).body(body.to_vec());
    // Content-Length is kept as sent: the SDK signs it.
    for (name, value) in req.headers() {
        if !matches!(name.as_str(), "connection" | "transfer-encoding") {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(response) = upstream.send().await else {
        return HttpResponse::BadGateway().finish();
    };
    let mut answer = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(response.status().as_u16()).unwrap(),
    );
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length"
        ) {
            answer.insert_header((name.as_str(), value.as_bytes()));
        }
    }
    answer.body(response.bytes().await.unwrap_or_default())
}
