//! The API documentation: generated from the code, and readable offline in a real browser.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_covers_every_endpoint() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let spec = app.get_json("/openapi.json").await;
    let paths = &spec["paths"];
    for (path, method) in [
        ("/put/", "post"),
        ("/get/{key}", "get"),
        ("/blobs/{key}", "put"),
        ("/blobs/{key}", "get"),
        ("/blobs/{key}", "delete"),
        ("/remove/{key}", "get"),
        ("/presign", "post"),
        ("/blobs", "get"),
        ("/status", "get"),
        ("/metrics", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    // No API key configured: the document asks for none.
    assert!(spec["components"]["securitySchemes"]["api_key"].is_null());
    assert!(paths["/put/"]["post"]["security"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openapi_declares_bearer_security_when_an_api_key_is_set() {
    let backends = Backends::start().await;
    let mut settings = backends.settings();
    settings.server.api_key = Some("a-key-of-sixteen-chars".into());
    let app = TestApp::spawn(&settings).await;
    let spec = app.get_json("/openapi.json").await;
    assert!(spec["components"]["securitySchemes"]["api_key"].is_object());
    assert!(spec["paths"]["/put/"]["post"]["security"].is_array());
    assert!(spec["paths"]["/put/"]["post"]["responses"]["401"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docs_page_lists_the_operations_in_headless_chromium() {
    let backends = Backends::start().await;
    let app = TestApp::spawn(&backends.settings()).await;
    let dom = chromium_dom(&format!("{}/docs/", app.address)).await;
    for operation in [
        "/put/",
        "/get/{key}",
        "/blobs/{key}",
        "/remove/{key}",
        "/status",
        "/metrics",
    ] {
        assert!(
            dom.contains(&format!("data-path=\"{operation}\"")),
            "Swagger UI does not list {operation}; DOM:\n{}",
            &dom[..dom.len().min(2000)]
        );
    }
    assert!(dom.contains("blobproxy"), "the title is missing");
}
