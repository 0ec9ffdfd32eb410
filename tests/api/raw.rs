//! The raw fast path: bytes in, bytes out, with HTTP's own caching and range semantics.

use std::time::Duration;

use crate::helpers::*;

pub(crate) async fn raw_put(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    data: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .http
        .put(format!("{}/blobs/{path}", app.address))
        .body(data);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_put_and_get_round_trip_bytes_with_their_content_type() {
    let backends = Backends::start().await;
    let settings = backends.settings();
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(200_000);
    let response = raw_put(&app, "raw/photo?ext=jpg", Some("image/jpeg"), data.clone()).await;
    assert_eq!(response.status(), 201);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["size"], 200_000);
    assert_eq!(body["extension"], "jpg");
    assert_eq!(etag, format!("\"{}\"", body["version"]));

    let response = app
        .http
        .get(format!("{}/blobs/raw/photo", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["content-length"], "200000");
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    assert!(response.bytes().await.unwrap() == data);
    // The JSON API sees the same blob.
    let (json_bytes, extension) = app.get_bytes("raw/photo").await;
    assert!(json_bytes == data);
    assert_eq!(extension, "jpg");
    // S3 keeps the Content-Type, so a cache miss answers the same.
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let object = backends.s3.object("raw/photo").await.unwrap();
    assert_eq!(object.content_type, "image/jpeg");
    let mut redis = backends.redis.client().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    let response = app
        .http
        .get(format!("{}/blobs/raw/photo", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    assert!(response.bytes().await.unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_get_answers_304_ranges_416_and_head() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let response = raw_put(&app, "ranged", None, data.clone()).await;
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let url = format!("{}/blobs/ranged", app.address);

    let response = app
        .http
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = app
        .http
        .get(&url)
        .header("if-none-match", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // No Content-Type sent and no extension: octet-stream.
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );

    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let response = app
            .http
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {start}-{end}/1000").as_str()
        );
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            &data[start..=end],
            "{range}"
        );
    }
    let response = app
        .http
        .get(&url)
        .header("range", "bytes=1000-1001")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], "bytes */1000");
    // A stale If-Range gets the whole blob.
    let response = app
        .http
        .get(&url)
        .header("range", "bytes=0-1")
        .header("if-range", "\"1\"")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 1000);

    let response = app.http.head(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "1000");
    assert_eq!(response.headers()["etag"].to_str().unwrap(), etag);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = app
        .http
        .head(format!("{}/blobs/missing", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raw_put_refuses_bad_input_and_stores_nothing() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.max_blob_bytes = 1000;
    let app = TestApp::spawn(&settings).await;
    let cases: Vec<(String, Option<&str>, usize, u16, &str)> = vec![
        ("too/big".into(), None, 1001, 413, "blob_too_large"),
        (
            "bad/ext?ext=a%2Fb".into(),
            None,
            10,
            400,
            "invalid_extension",
        ),
        (
            "bad/type".into(),
            Some("nonsense"),
            10,
            400,
            "invalid_content_type",
        ),
        ("a//b".into(), None, 10, 400, "invalid_key"),
        ("wc?wc=7".into(), None, 10, 400, "invalid_query"),
    ];
    for (path, content_type, size, status, code) in cases {
        let response = raw_put(&app, &path, content_type, vec![1; size]).await;
        assert_eq!(response.status(), status, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], code, "{path}");
    }
    let mut redis = backends.redis.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(redis_layout().every_key())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    // A zero-byte raw blob is fine; the largest allowed one too.
    assert_eq!(raw_put(&app, "empty", None, vec![]).await.status(), 201);
    assert_eq!(
        raw_put(&app, "max", None, vec![9; 1000]).await.status(),
        201
    );
    let response = app
        .http
        .get(format!("{}/blobs/empty", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raw_put_whose_body_breaks_off_is_an_incomplete_body_and_stores_nothing() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head =
        format!("PUT /blobs/cut HTTP/1.1\r\nHost: {address}\r\nContent-Length: 100\r\n\r\nabc");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The client goes no further: it closes its side with 97 bytes still owed.
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut answer),
    )
    .await
    .expect("no answer");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"incomplete_body\""), "{answer}");
    assert!(
        answer.contains("body ended before it was complete"),
        "{answer}"
    );
    assert_eq!(app.get("cut").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_raw_get_of_a_missing_key_names_the_key() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let response = app
        .http
        .get(format!("{}/blobs/no/such/raw", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(
        body["msg"].as_str().unwrap().contains("no/such/raw"),
        "{body}"
    );
}
