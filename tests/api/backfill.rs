//! `blobproxy backfill <mirror>`: a mirror added to a deployment that already holds objects
//! gets every one of them (and every version, when both buckets keep them), resumes after a
//! kill, and `--verify` compares the two stores key by key.

use std::time::Duration;

use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use futures::StreamExt as _;

use blobproxy::domain::{Blob, BlobKey};
use blobproxy::store::{BlobStore as _, S3Store};

use crate::helpers::*;

/// The environment that names `mirror` as the mirror store `second`.
fn mirror_env(mirror: &S3Server) -> Vec<(&'static str, String)> {
    vec![
        ("BLOBPROXY_MIRRORS", "second".to_owned()),
        ("BLOBPROXY_MIRROR_SECOND_S3_ENDPOINT", mirror.endpoint()),
        ("BLOBPROXY_MIRROR_SECOND_S3_BUCKET", BUCKET.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

fn backfill(backends: &Backends, mirror: &S3Server, args: &[&str]) -> std::process::Command {
    let mut command = blobproxy_command(backends);
    command
        .arg("backfill")
        .arg("second")
        .args(args)
        .envs(mirror_env(mirror));
    command
}

/// Runs the command; (exit code, what it printed).
fn run(command: &mut std::process::Command) -> (Option<i32>, String) {
    let out = command.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// A field of the back-fill's cursor in Redis.
async fn cursor(backends: &Backends, field: &str) -> Option<String> {
    let mut redis = backends.redis.client().await;
    redis::cmd("HGET")
        .arg(redis_layout().mirror("second").backfill)
        .arg(field)
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// Objects the back-fill copied so far, by its cursor.
async fn objects_copied(backends: &Backends) -> u64 {
    cursor(backends, "objects")
        .await
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_killed_halfway_resumes_and_verify_finds_the_mirror_clean() {
    const OBJECTS: usize = 10_000;
    // The deployment before the mirror: 10,000 objects in the primary store (s3s-fs), as the
    // drain writes them (its S3 client, straight: through a replica and a worker this took
    // minutes of a loaded machine, and the drain has tests of its own).
    let backends = Backends::start_on(S3Kind::S3sFs).await;
    let settings = backends.settings();
    let mut primary = S3Store::connect(&settings.s3, Some(credentials()))
        .await
        .unwrap();
    primary.open_bucket(&settings.s3).await.unwrap();
    futures::stream::iter(0..OBJECTS)
        .for_each_concurrent(32, |i| {
            let primary = &primary;
            async move {
                let key = format!("old/{i:05}");
                let blob = Blob {
                    data: key.clone().into_bytes().into(),
                    extension: "bin".into(),
                    content_type: "application/octet-stream".into(),
                    version: 1_000 + i as u64,
                };
                primary
                    .put(&BlobKey::parse(key).unwrap(), &blob)
                    .await
                    .unwrap();
            }
        })
        .await;
    // The mirror is added: another s3s-fs (moto, at ~100 requests a second here, would make
    // this test take minutes; the other mirror tests pair moto with s3s-fs).
    let mirror = S3Server::start_kind(S3Kind::S3sFs).await;

    // Killed halfway: once its cursor says it copied 5,000.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut first = BlobproxyProcess::spawn_from(
        blobproxy_command(&backends),
        &["backfill", "second", "--rate", "0", "--keys-at-once", "32"],
        &mirror_env(&mirror),
        log.path(),
    );
    let killed_at = std::time::Instant::now();
    while objects_copied(&backends).await < 5000 {
        let said = || std::fs::read_to_string(log.path()).unwrap();
        assert!(!first.exited(), "the back-fill ended early: {}", said());
        assert!(
            killed_at.elapsed() < Duration::from_secs(300),
            "the back-fill did not copy 5000 objects in 300 s: {}",
            said()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10)).await;
    let copied_before = objects_copied(&backends).await;
    // The last key of the last page it finished.
    let after = cursor(&backends, "after").await.unwrap();
    let done_before: usize = after.trim_start_matches("old/").parse::<usize>().unwrap() + 1;
    let in_mirror = mirror.keys().await.len();
    assert!(
        (5000..OBJECTS).contains(&in_mirror),
        "{in_mirror} objects in the mirror when killed"
    );
    // Resumed: it starts after the last page it finished, and ends with every object there.
    let (code, said) = run(&mut backfill(
        &backends,
        &mirror,
        &["--rate", "0", "--keys-at-once", "32"],
    ));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("resuming after"), "{said}");
    let keys = mirror.keys().await;
    assert_eq!(keys.len(), OBJECTS);
    for i in (0..OBJECTS).step_by(997) {
        let key = format!("old/{i:05}");
        let (primary, copy) = (
            backends.s3.object(&key).await.unwrap(),
            mirror.object(&key).await.unwrap(),
        );
        assert_eq!(
            (copy.data, copy.version, copy.extension),
            (primary.data, primary.version, primary.extension)
        );
    }
    // Resumed where it stopped: it looked only at the keys after the cursor, copied each
    // object once over both runs (the copies of the page it was killed in are found there
    // and not copied again), and the cursor is gone once it finished.
    let checked = format!("{} keys checked by this run", OBJECTS - done_before);
    assert!(said.contains(&checked), "{checked}: {said}");
    let copied: u64 = said
        .split(" objects copied")
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        copied >= copied_before && copied <= OBJECTS as u64,
        "{copied}: {said}"
    );
    assert_eq!(cursor(&backends, "after").await, None);
    let (code, said) = run(&mut backfill(&backends, &mirror, &["--verify"]));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "compared {OBJECTS} keys of mirror second: 0 missing, 0 extra, 0 differing"
        )),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backfill_copies_every_version_the_primary_keeps_in_order() {
    let backends = Backends::start_on(S3Kind::Moto).await;
    let mut settings = backends.settings();
    settings.s3.versioning = Versioning::On;
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    // 20 keys, 3 versions each; every fourth key's middle version is a delete.
    let mut versions = std::collections::BTreeMap::new();
    for round in 0..3 {
        for i in 0..20 {
            let key = format!("kept/{i}");
            if round == 1 && i % 4 == 0 {
                assert_eq!(app.delete(&key).await.status(), 200);
            } else {
                let response = app
                    .put(&key, "txt", format!("{key} v{round}").as_bytes())
                    .await;
                assert_eq!(response.status(), 201);
            }
            // One version in S3 at a time, so each becomes a version of its own.
            backends.wait_until_drained(Duration::from_secs(30)).await;
            versions.entry(key).or_insert_with(Vec::new).push(round);
        }
    }
    worker.stop().await;
    // A versioned mirror (another moto), added now.
    let mirror = S3Server::start_kind(S3Kind::Moto).await;
    let client = mirror.client();
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    client
        .put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let (code, said) = run(&mut backfill(&backends, &mirror, &["--rate", "0"]));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("20 objects and their versions copied (60 versions)"),
        "{said}"
    );
    let (code, said) = run(&mut backfill(&backends, &mirror, &["--verify"]));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("compared 20 keys of mirror second: 0 missing, 0 extra, 0 differing"),
        "{said}"
    );
    // The newest of each key is the primary's newest, and the history is the same.
    for i in 0..20 {
        let key = format!("kept/{i}");
        assert_eq!(
            mirror.object(&key).await.unwrap().data,
            format!("{key} v2").into_bytes()
        );
        let listed = client
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(&key)
            .send()
            .await
            .unwrap();
        let count = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key.as_str()))
            .count();
        // Three versions; a delete is an empty version plus S3's delete marker.
        assert_eq!(count, 3, "{key}: {listed:?}");
    }
    // Run again: nothing to copy.
    let (code, said) = run(&mut backfill(&backends, &mirror, &["--rate", "0"]));
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("0 objects and their versions copied (0 versions)"),
        "{said}"
    );
    // verify sees what differs: a key gone from the mirror, one at another version, one extra.
    let client = mirror.client();
    client
        .delete_object()
        .bucket(BUCKET)
        .key("kept/7")
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket(BUCKET)
        .key("kept/8")
        .body(b"other".to_vec().into())
        .metadata("version", "1")
        .metadata("extension", "bin")
        .send()
        .await
        .unwrap();
    client
        .put_object()
        .bucket(BUCKET)
        .key("stray")
        .body(b"s".to_vec().into())
        .send()
        .await
        .unwrap();
    let (code, said) = run(&mut backfill(&backends, &mirror, &["--verify"]));
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("1 missing, 1 extra, 1 differing"), "{said}");
    for line in ["missing: kept/7", "extra: stray", "differing: kept/8"] {
        assert!(said.contains(line), "{said}");
    }
}
