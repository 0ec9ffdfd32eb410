//! Calls from browsers: presigned URLs (one key, one method, until a time, no API key) and
//! CORS, down to a real Chromium page on another origin uploading a file and reading it back.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const API_KEY: &str = "an-api-key-of-some-length";
const SECRET: &str = "the-presign-secret-every-replica-shares";

fn settings_with(backends: &Backends, origins: &[&str]) -> blobproxy::config::Settings {
    let mut settings = backends.settings();
    settings.server.api_key = Some(API_KEY.into());
    settings.browser.presign_secret = Some(SECRET.into());
    settings.browser.cors_origins = origins.iter().map(|o| o.to_string()).collect();
    settings
}

/// `POST /presign` with the API key: its status and body.
async fn presign(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/presign", app.address))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn url_for(app: &TestApp, key: &str, method: &str, expires_in: u64) -> String {
    let (status, body) = presign(
        app,
        json!({"key": key, "method": method, "expires_in": expires_in}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["url"].as_str().unwrap().to_owned()
}

/// The status and error code of an answer.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presigned_url_reads_or_writes_its_one_key_without_the_api_key_until_it_expires() {
    let backends = Backends::start().await;
    let settings = settings_with(&backends, &[]);
    let app = TestApp::spawn(&settings).await;
    let http = reqwest::Client::new();

    // Handing out URLs takes the API key.
    let unauthorized = http
        .post(format!("{}/presign", app.address))
        .json(&json!({"key": "k", "method": "PUT", "expires_in": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let put_url = url_for(&app, "uploads/report 1.pdf", "PUT", 300).await;
    assert!(put_url.starts_with(&format!("{}/blobs/uploads/report%201.pdf?", app.address)));
    let written = http.put(&put_url).body("the report").send().await.unwrap();
    assert_eq!(written.status(), 201);
    let version = written.json::<Value>().await.unwrap()["version"]
        .as_u64()
        .unwrap();

    let get_url = url_for(&app, "uploads/report 1.pdf", "GET", 300).await;
    let read = http.get(&get_url).send().await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"the report");
    assert_eq!(http.head(&get_url).send().await.unwrap().status(), 200);

    // Refused, and nothing changed: another method, another key, a changed signature or
    // expiry, a request with no signature at all.
    let (status, code) = refusal(http.get(&put_url).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigned_url_invalid"));
    let (status, code) = refusal(http.put(&get_url).body("x").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigned_url_invalid"));
    let other_key = put_url.replace("report%201.pdf", "report%202.pdf");
    let (status, code) = refusal(http.put(&other_key).body("x").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigned_url_invalid"));
    let later = {
        let (head, expires) = put_url.split_once("expires=").unwrap();
        let (n, rest) = expires.split_once('&').unwrap();
        format!("{head}expires={}&{rest}", n.parse::<u64>().unwrap() + 3600)
    };
    let (status, code) = refusal(http.put(&later).body("x").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigned_url_invalid"));
    let tampered = format!("{}A", put_url.trim_end_matches(|c| c != '&' && c != '='));
    let (status, _) = refusal(http.put(&tampered).body("x").send().await.unwrap()).await;
    assert_eq!(status, 403);
    let unsigned = put_url.split_once('?').unwrap().0;
    assert_eq!(
        http.put(unsigned).body("x").send().await.unwrap().status(),
        401
    );

    // A URL that lived one second, used after it.
    let short = url_for(&app, "uploads/report 1.pdf", "PUT", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, code) = refusal(http.put(&short).body("late").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigned_url_expired"));

    // What stands is the one write the valid URL made.
    let stored = app
        .http
        .get(format!("{}/blobs/uploads/report%201.pdf", app.address))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.headers()["etag"], format!("\"{version}\"").as_str());
    assert_eq!(stored.bytes().await.unwrap().as_ref(), b"the report");

    // Bad requests for a URL: named, nothing handed out.
    for (body, code) in [
        (
            json!({"key": "k", "method": "DELETE", "expires_in": 60}),
            "invalid_json",
        ),
        (
            json!({"key": "k", "method": "GET", "expires_in": 0}),
            "invalid_json",
        ),
        (
            json!({"key": "k", "method": "GET", "expires_in": 604801}),
            "invalid_json",
        ),
        (
            json!({"key": "", "method": "GET", "expires_in": 60}),
            "invalid_key",
        ),
        (json!({"key": "k", "method": "GET"}), "invalid_json"),
    ] {
        let (status, answer) = presign(&app, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str().unwrap()),
            (400, code),
            "{body}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_presign_secret_urls_are_neither_made_nor_taken() {
    let backends = Backends::start().await;
    let mut settings = settings_with(&backends, &[]);
    let signer = TestApp::spawn(&settings).await;
    let url = url_for(&signer, "k", "GET", 60).await;
    settings.browser.presign_secret = None;
    let app = TestApp::spawn(&settings).await;
    let (status, body) =
        presign(&app, json!({"key": "k", "method": "GET", "expires_in": 60})).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (403, "presigning_disabled")
    );
    let on_other = url.replace(&signer.address, &app.address);
    let (status, code) = refusal(reqwest::get(&on_other).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "presigning_disabled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cors_answers_preflights_of_listed_origins_and_marks_their_answers_errors_included() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&settings_with(&backends, &["http://app.example:3000"])).await;
    let http = reqwest::Client::new();
    let preflight = |origin: &str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/blobs/k", app.address))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight("http://app.example:3000").await.unwrap();
    assert_eq!(allowed.status(), 204);
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://app.example:3000"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(
        headers["access-control-allow-headers"],
        "content-type, idempotency-key"
    );
    assert_eq!(headers["vary"], "Origin");

    let (status, code) = refusal(preflight("http://evil.example").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (403, "origin_not_allowed"));

    // Answers to a listed origin carry the headers, errors too (a 401 without the key, a 404).
    let unauthorized = http
        .get(format!("{}/blobs/missing", app.address))
        .header("Origin", "http://app.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(
        unauthorized.headers()["access-control-allow-origin"],
        "http://app.example:3000"
    );
    let missing = http
        .get(format!("{}/blobs/missing", app.address))
        .bearer_auth(API_KEY)
        .header("Origin", "http://app.example:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let exposed = missing.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("ETag") && exposed.contains("X-Request-Id"),
        "{exposed}"
    );
    assert_eq!(refusal(missing).await.1, "not_found");
    // Another origin is served as any request (the browser withholds the answer), unmarked.
    let elsewhere = http
        .get(format!("{}/healthz", app.address))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 200);
    assert!(
        elsewhere
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Serves `page` to every request on a port of its own: another origin than the service's.
fn serve_page(page: String) -> String {
    serve_page_from(move || page.clone())
}

/// A page that uploads a file with a presigned PUT, reads it back with a presigned GET, and
/// writes what it saw into `<pre id="out">`.
fn upload_page(put_url: &str, get_url: &str, bytes: &[u8]) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
(async () => {{
  const file = new File([new Uint8Array({bytes:?})], "photo.bin", {{ type: "application/octet-stream" }});
  const put = await fetch({put_url:?}, {{ method: "PUT", body: file, headers: {{ "Content-Type": file.type }} }});
  const written = await put.json();
  const get = await fetch({get_url:?});
  const read = Array.from(new Uint8Array(await get.arrayBuffer()));
  out.textContent = JSON.stringify({{ put: put.status, version: written.version, get: get.status,
    etag: get.headers.get("ETag"), bytes: read }});
}})().catch(e => {{ out.textContent = JSON.stringify({{ error: String(e) }}); }});
</script></body></html>"#
    )
}

/// What the page wrote into `<pre id="out">`.
fn page_result(dom: &str) -> Value {
    let text = dom
        .split_once(r#"<pre id="out">"#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(text, _)| text.replace("&quot;", "\""))
        .unwrap_or_else(|| panic!("no result in the page:\n{dom}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_on_another_origin_uploads_a_file_with_a_presigned_url_and_reads_it_back_in_chromium()
 {
    let backends = Backends::start().await;
    let bytes: Vec<u8> = (0..=255u8).chain(b"photo".iter().copied()).collect();
    // The page's origin is known only once its server listens: list it, then start blobproxy.
    let page_slot = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let page_origin = {
        let slot = page_slot.clone();
        serve_page_from(move || slot.lock().unwrap().clone())
    };
    let settings = settings_with(&backends, &[&page_origin]);
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    let put_url = url_for(&app, "browser/photo.bin", "PUT", 300).await;
    let get_url = url_for(&app, "browser/photo.bin", "GET", 300).await;
    *page_slot.lock().unwrap() = upload_page(&put_url, &get_url, &bytes);

    let seen = page_result(&chromium_dom(&page_origin).await);
    assert_eq!(seen["put"], 201, "{seen}");
    assert_eq!(seen["get"], 200, "{seen}");
    let read: Vec<u8> = serde_json::from_value(seen["bytes"].clone()).unwrap();
    assert_eq!(read, bytes);
    let version = seen["version"].as_u64().unwrap();
    assert_eq!(
        seen["etag"],
        format!("\"{version}\""),
        "ETag is exposed to the page"
    );
    // The upload is a write like any other: it reaches S3.
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let object = backends
        .s3
        .object_at("browser/photo.bin", version)
        .await
        .unwrap();
    assert_eq!(object.data, bytes);
    worker.stop().await;

    // A page from an origin not listed: the browser refuses to hand it the answer.
    let stranger = serve_page(upload_page(&put_url, &get_url, b"other"));
    let seen = page_result(&chromium_dom(&stranger).await);
    assert!(
        seen["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{seen}"
    );
}

/// Serves the page `page` gives at each request, on a port of its own (another origin than
/// the service's): a page can be written after its server starts, once its origin is known.
fn serve_page_from(page: impl Fn() -> String + Send + 'static) -> String {
    let listener = TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let page = page();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    address
}
