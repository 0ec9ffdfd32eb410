//! Keys are what S3 can store and list: random keys from a wide alphabet go through the key
//! rules, and every one accepted goes through a real PUT, drain, GET and listing on a real
//! S3 server. A key the rules accept and S3 cannot carry is a write that can never drain.
//!
//! The S3 server is moto, as AWS-like as runs here: s3s-fs keeps each object's metadata in
//! one file named after the whole URL-encoded key, so it refuses (500, for ever) any key
//! whose encoded form passes ~210 bytes, which S3 and MinIO store.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;

use crate::helpers::*;

/// Characters a careless or hostile client sends in keys.
fn wide_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => proptest::sample::select(vec!['/', '.', ' ', '%', '?', '#', '+', '&', '=', '\\', '"', '<', '>', '*', '~', ':', '@', '!', '$', '\'', '(', ')', ',', ';', '[', ']', '{', '}', '^', '`', '|']),
        1 => proptest::sample::select(vec!['\t', '\n', '\r', '\u{0}', '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2003}', '\u{200b}', '\u{202e}', '\u{2028}', '\u{3000}', '\u{feff}', '\u{fffd}', '\u{fffe}', '\u{ffff}', '\u{fdd0}']),
        2 => any::<char>(),
    ]
}

/// A raw key: mostly short, sometimes with a segment near or past 255 bytes.
fn raw_key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::collection::vec(wide_char(), 1..40).prop_map(String::from_iter),
        1 => (250usize..260).prop_map(|n| "s".repeat(n)),
        1 => proptest::collection::vec(wide_char(), 1..20)
            .prop_map(|c| format!("{}/{}", "é".repeat(127), String::from_iter(c))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_key_the_rules_accept_round_trips_through_s3_and_lists() {
    let redis = RedisServer::start().await;
    let moto = S3Server::start_kind(S3Kind::Moto).await;
    let settings = Backends::settings_for(&redis, &moto.endpoint());
    let app = TestApp::spawn(&settings).await;
    let _worker = TestWorker::spawn(&settings).await;
    let mut runner = TestRunner::deterministic();
    let strategy = raw_key();
    let (mut accepted, mut refused) = (BTreeSet::new(), 0);
    // The keys the API fuzzer found, then random ones.
    let found = [
        " ",
        "\u{a0}",
        " \u{3000}",
        "a\u{fffe}",
        "\u{ffff}",
        "x\u{1b}",
        "é/ /é",
    ];
    let random = (0..500).map(|_| strategy.new_tree(&mut runner).unwrap().current());
    for key in found.into_iter().map(String::from).chain(random) {
        let parsed = blobproxy::domain::BlobKey::parse(key.clone());
        let response = app
            .http
            .put(format!("{}/blobs/{}", app.address, encode_key(&key)))
            .body(key.clone().into_bytes())
            .send()
            .await
            .unwrap();
        match parsed {
            Ok(_) => {
                assert_eq!(response.status(), 201, "{key:?} was refused over HTTP");
                accepted.insert(key);
            }
            Err(_) => {
                assert_eq!(response.status(), 400, "{key:?}");
                refused += 1;
            }
        }
    }
    assert!(
        accepted.len() > 100 && refused > 20,
        "{} accepted, {refused} refused",
        accepted.len()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while app.status().await["dirty"] != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_s3 = keys_in(&moto.endpoint()).await;
    let stuck: Vec<&String> = accepted.iter().filter(|k| !in_s3.contains(*k)).collect();
    assert!(
        stuck.is_empty(),
        "accepted but never in S3: {stuck:?}\n{}",
        app.status().await
    );
    let mut listed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = "/blobs?limit=37".to_owned();
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get_json(&url).await;
        for item in page["items"].as_array().expect("a page") {
            assert!(
                listed.insert(item["key"].as_str().unwrap().to_owned()),
                "listed twice: {item}"
            );
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    for key in &accepted {
        assert!(in_s3.contains(key), "{key:?} is not in S3");
        assert!(listed.contains(key), "{key:?} is not listed");
        let response = app
            .http
            .get(format!("{}/blobs/{}", app.address, encode_key(key)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {key:?}");
        assert_eq!(response.bytes().await.unwrap(), key.as_bytes(), "{key:?}");
    }
    assert_eq!(listed.len(), accepted.len());
}

/// Every key in the bucket, read straight from the S3 server.
async fn keys_in(endpoint: &str) -> BTreeSet<String> {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(credentials())
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let mut keys = BTreeSet::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(BUCKET)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            keys.insert(object.key().unwrap().to_owned());
        }
    }
    keys
}
