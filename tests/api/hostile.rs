//! Hostile and careless input, as the fuzzer found it: each class of defect it found, through
//! the HTTP API against the real servers.

use std::time::Duration;

use crate::helpers::*;
use crate::raw::raw_put;
use crate::s3_proxy::S3Proxy;

async fn body(response: reqwest::Response) -> serde_json::Value {
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_s3_cannot_store_or_list_are_refused_before_anything_is_written() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    for key in [
        "%20",
        "%C2%A0",
        "%20%09",
        "a%EF%BF%BE",
        "%EF%BF%BFb",
        &"s".repeat(256),
    ] {
        let response = raw_put(&app, &format!("{key}?wc=1"), None, b"hi".to_vec()).await;
        assert_eq!(response.status(), 400, "PUT {key}");
        assert_eq!(body(response).await["code"], "invalid_key", "PUT {key}");
        let response = app
            .http
            .get(format!("{}/get/{key}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "GET {key}");
    }
    assert_eq!(app.status().await["dirty"], 0);
    assert!(backends.s3.keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prefix_or_cursor_xml_cannot_carry_is_the_clients_error_not_an_outage() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    for query in ["prefix=%1B", "prefix=a%EF%BF%BF", "cursor=Gw"] {
        let response = app
            .http
            .get(format!("{}/blobs?{query}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        assert!(!response.headers().contains_key("retry-after"), "{query}");
        assert_eq!(body(response).await["code"], "invalid_query", "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_s3_does_not_promise_will_pass_is_dead_lettered_not_retried_forever() {
    let backends = Backends::start().await;
    let proxy = S3Proxy::start(backends.s3.port).await;
    proxy.refuse_with(BUCKET, "odd/answer", 501, "NotImplemented");
    let mut settings = backends.settings();
    settings.s3_endpoint = Some(proxy.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let data = random_bytes(100);
    assert_eq!(app.put("odd/answer", "", &data).await.status(), 201);
    let status = eventually(Duration::from_secs(30), "a dead letter", || async {
        let status = app.status().await;
        (status["dead_letters"] == 1).then_some(status)
    })
    .await;
    let error = status["dead_letter_sample"][0]["error"].as_str().unwrap();
    assert!(error.contains("NotImplemented"), "{error}");
    assert_eq!(
        proxy.refused_count(),
        4,
        "the usual attempts, then the dead letters"
    );
    // Still dirty and served from the cache: never dropped.
    assert_eq!(app.get_bytes("odd/answer").await.0, data);
}
