//! S3 credentials from the platform, not from static keys: a Kubernetes-style web identity
//! (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`) exchanged with STS (moto's
//! `AssumeRoleWithWebIdentity`, reached through `AWS_ENDPOINT_URL_STS`) for temporary
//! credentials, which sign every S3 request. A proxy in front of S3 records who signed.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;
use crate::s3_proxy::S3Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_web_identity_token_gets_temporary_credentials_that_sign_every_s3_request() {
    let (redis, moto) = tokio::join!(RedisServer::start(), S3Server::start_kind(S3Kind::Moto));
    let proxy = S3Proxy::start(moto.port).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // What a service account's projected token is; moto's STS takes any.
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJibG9icHJveHkifQ.c2ln",
    )
    .unwrap();
    let port = free_port();
    // No static keys anywhere: no AWS_ACCESS_KEY_ID, no secret files, no ~/.aws.
    let mut command = Command::new(env!("CARGO_BIN_EXE_blobproxy"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("HOME", dir.path())
        .env("BLOBPROXY_REDIS_URL", redis.url())
        .env("BLOBPROXY_S3_ENDPOINT", proxy.endpoint())
        .env("BLOBPROXY_BIND", format!("127.0.0.1:{port}"))
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/blobproxy")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
        .env("AWS_ROLE_SESSION_NAME", "blobproxy-test")
        .env("AWS_ENDPOINT_URL_STS", moto.endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let _all = BlobproxyProcess::spawn_from(command, &["all"], &[], &dir.path().join("all.log"));
    wait_for_addr(&format!("127.0.0.1:{port}"), "blobproxy all").await;

    let http = reqwest::Client::new();
    let data = random_bytes(2000);
    let base = format!("http://127.0.0.1:{port}");
    let put = http
        .put(format!("{base}/blobs/identity/a"))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let stored = eventually(Duration::from_secs(30), "identity/a in S3", || {
        moto.object("identity/a")
    })
    .await;
    assert_eq!(stored.data, data);
    // The replica reads it back.
    let read = http
        .get(format!("{base}/blobs/identity/a"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.bytes().await.unwrap(), data);

    // Every S3 request was signed with the temporary credentials STS handed out: one access
    // key, not the tests' static one, each with its session token.
    let signers = proxy.signers();
    assert!(!signers.is_empty());
    let (key, _) = &signers[0];
    println!("S3 requests: {}, signed by {key}", signers.len());
    assert!(!key.is_empty() && key != ACCESS_KEY, "{signers:?}");
    assert!(
        signers.iter().all(|(k, token)| k == key && *token),
        "{signers:?}"
    );
}
