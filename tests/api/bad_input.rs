//! Bad input gets a clear JSON error and changes nothing: no blob, no job, nothing in S3.

use crate::helpers::*;

async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert!(!body["msg"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_bad_put_is_refused_with_json_and_stores_nothing() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.max_blob_bytes = 1024;
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    let url = format!("{}/put/", app.address);
    let http = &app.http;
    let json = |body: &str| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (json("{not json"), 400, "invalid_json"),
        (json("[]"), 400, "invalid_json"),
        (json(r#"["k", "", "aGk="]"#), 400, "invalid_json"),
        (
            json(r#"{"extension":"png","data":"YQ=="}"#),
            400,
            "invalid_json",
        ),
        (
            json(r#"{"key":"k","extension":"png"}"#),
            400,
            "invalid_json",
        ),
        (json(r#"{"key":5,"data":"YQ=="}"#), 400, "invalid_json"),
        (
            json(r#"{"key":"k","data":"!!not base64!!"}"#),
            400,
            "invalid_base64",
        ),
        (json(r#"{"key":"k","data":"YQ=x"}"#), 400, "invalid_base64"),
        (json(r#"{"key":"","data":"YQ=="}"#), 400, "invalid_key"),
        (json(r#"{"key":"/abs","data":"YQ=="}"#), 400, "invalid_key"),
        (
            json(r#"{"key":"a/../b","data":"YQ=="}"#),
            400,
            "invalid_key",
        ),
        (json(r#"{"key":"a//b","data":"YQ=="}"#), 400, "invalid_key"),
        (
            json("{\"key\":\"tab\\there\",\"data\":\"YQ==\"}"),
            400,
            "invalid_key",
        ),
        (
            json(&format!(
                r#"{{"key":"{}","data":"YQ=="}}"#,
                "k".repeat(1025)
            )),
            400,
            "invalid_key",
        ),
        (
            json(r#"{"key":"k","extension":"p/ng","data":"YQ=="}"#),
            400,
            "invalid_extension",
        ),
        (
            json(&format!(
                r#"{{"key":"k","extension":"{}","data":"YQ=="}}"#,
                "x".repeat(33)
            )),
            400,
            "invalid_extension",
        ),
        (
            http.post(&url)
                .header("content-type", "text/plain")
                .body(r#"{"key":"k","data":"YQ=="}"#),
            415,
            "unsupported_media_type",
        ),
        (
            http.post(&url).body(r#"{"key":"k","data":"YQ=="}"#),
            415,
            "unsupported_media_type",
        ),
        (
            json(&format!(
                r#"{{"key":"k","data":"{}"}}"#,
                blobproxy::domain::encode_base64(&[7u8; 1025])
            )),
            413,
            "blob_too_large",
        ),
        (
            json(&format!(
                r#"{{"key":"k","data":"{}"}}"#,
                "A".repeat(64 * 1024)
            )),
            413,
            "payload_too_large",
        ),
    ];
    for (request, status, code) in cases {
        assert_error(request.send().await.unwrap(), status, code).await;
    }
    // Give a worker the chance to do something if anything had been queued.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    worker.stop().await;
    let mut redis = backends.redis.client().await;
    let blob_keys: Vec<String> = redis::cmd("KEYS")
        .arg(redis_layout().every_key())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(blob_keys.is_empty(), "Redis holds {blob_keys:?}");
    let job_data: u64 = redis::cmd("HLEN")
        .arg(redis_layout().queue.data)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(job_data, 0, "a job was queued");
    assert!(backends.s3.keys().await.is_empty());
    // The largest valid blob still goes through.
    assert_eq!(app.put("k", "", &[7u8; 1024]).await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_on_get_are_json_400s() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    // (reqwest resolves `%2E%2E` segments itself, so `..` in a GET path is covered by the unit
    // tests of BlobKey and the PUT cases.)
    for path in ["/get/", "/get/a//b", "/get/%FF", "/get/%09tab"] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "invalid_key").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_routes_and_methods_do_not_answer_html() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let response = app
        .http
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "no_route").await;

    // A known path with a method it does not take: 405, with the methods it does take.
    let cases = [
        (reqwest::Method::POST, "/blobs/k", "GET, HEAD, PUT, DELETE"),
        (reqwest::Method::PUT, "/get/k", "GET, HEAD"),
        (reqwest::Method::DELETE, "/remove/k", "GET"),
        (reqwest::Method::GET, "/put/", "POST"),
        (reqwest::Method::TRACE, "/healthz", "GET, HEAD"),
        (reqwest::Method::POST, "/status", "GET, HEAD"),
    ];
    for (method, path, allowed) in cases {
        let response = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .body("abc")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["allow"], allowed, "{method} {path}");
        assert_error(response, 405, "method_not_allowed").await;
    }
    let response = app
        .http
        .get(format!("{}/blobs/k", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "the refused POST stored nothing");
}
