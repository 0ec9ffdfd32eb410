//! The API fuzzer in the suite: schemathesis, driven by the running service's own
//! `/openapi.json`, all checks, with and without an API key, presigning and CORS on. Any server error, undocumented
//! status or answer that breaks its schema fails the test.
//!
//! S3 here is moto (in the same venv): the fuzzer writes keys like `0` and `0/0`, which AWS
//! (and moto) keep side by side and s3s-fs (keys as files) cannot.

use std::process::Command;

use crate::helpers::*;

/// Seconds each fuzzing run may take; `BLOBPROXY_FUZZ_SECS` for a longer one.
fn budget() -> String {
    std::env::var("BLOBPROXY_FUZZ_SECS").unwrap_or_else(|_| "40".into())
}

/// Runs schemathesis against `app`; panics with its report unless it passed.
async fn fuzz(app: &TestApp, api_key: Option<&str>) {
    let scratch = tempfile::tempdir().unwrap();
    let mut command = Command::new(venv().join("bin/st"));
    command
        .arg("run")
        .arg(format!("{}/openapi.json", app.address))
        .args(["--checks", "all"])
        // A schema cannot say every key rule (bytes per segment, not only whitespace, no `.`
        // segment): a schema-valid key that breaks one gets a documented 400 invalid_key.
        // A DELETE repeating an `Idempotency-Key` it sent within the last minute is a retry:
        // answered as the first was, not applied again (the IETF draft's and Stripe's rule;
        // `Idempotent-Replayed: true`), so the key written meanwhile stays. The fuzzer reuses
        // header values and takes that for a deleted resource still served.
        .args([
            "--exclude-checks",
            "positive_data_acceptance,use_after_free",
        ])
        .args(["--max-time", &budget()])
        // One worker: CPython 3.11 before 3.11.8 can fail hypothesis's own source parsing
        // from threads ("AST constructor recursion depth mismatch", cpython#106905).
        .args(["--workers", "1"])
        .args(["--request-timeout", "30"])
        // wc=1 waits for S3 (up to BLOBPROXY_WC_TIMEOUT_SECS) on a machine the rest of the
        // suite keeps busy: not a latency check.
        .args(["--max-response-time", "60"])
        // Hypothesis keeps its example database in the working directory.
        .current_dir(scratch.path());
    if let Some(key) = api_key {
        command.args(["--header", &format!("Authorization: Bearer {key}")]);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis is not installed; run scripts/install-deps.sh");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains(" passed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_holds_to_its_openapi_document_under_schemathesis() {
    let redis = RedisServer::start().await;
    let moto = S3Server::start_kind(S3Kind::Moto).await;
    let mut settings = Backends::settings_for(&redis, &moto.endpoint());
    settings.server.wc_timeout = std::time::Duration::from_secs(20);
    // Versions kept, so `/history` and `?version=` are fuzzed past their `history_disabled`.
    settings.s3.versioning = Versioning::On;
    // Presigning and CORS on, so `/presign` is fuzzed past its `presigning_disabled` and every
    // answer to a listed origin carries the CORS headers.
    settings.browser.presign_secret = Some("a-presign-secret-for-the-fuzzing-run".into());
    settings.browser.cors_origins = vec!["http://app.example".into()];
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    fuzz(&app, None).await;

    let key = "fuzzing-api-key-0123456789";
    settings.server.api_key = Some(key.into());
    let secured = TestApp::spawn(&settings).await;
    fuzz(&secured, Some(key)).await;
}
