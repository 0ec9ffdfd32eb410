//! `BLOBPROXY_REDIS_REPLICA_ACKS`: a write is answered once Redis replicas confirm it (`WAIT`),
//! or 504 `replica_ack_timeout` when they do not in time, the write standing on the primary.

use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_waits_for_its_replica_and_says_so_when_none_confirms() {
    let backends = Backends::start().await;
    let primary_port = backends.redis.port.to_string();
    let mut replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary_port]).await;
    let mut replica_conn = replica.client().await;
    eventually(
        Duration::from_secs(10),
        "the replica's link to its primary",
        || {
            let mut conn = replica_conn.clone();
            async move {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                info.contains("master_link_status:up").then_some(())
            }
        },
    )
    .await;
    let mut settings = backends.settings();
    settings.redis.replica_acks = 1;
    settings.redis.replica_ack_timeout = std::time::Duration::from_millis(700);
    let app = TestApp::spawn(&settings).await;

    for i in 0..20 {
        let key = format!("replicated/{i}");
        let data = random_bytes(100 + i);
        assert_eq!(app.put(&key, "", &data).await.status(), 201);
        // Confirmed means the replica has it, at the moment the answer comes.
        let held: Vec<u8> = redis::cmd("HGET")
            .arg(redis_layout().record(&key))
            .arg(record::DATA)
            .query_async(&mut replica_conn)
            .await
            .unwrap();
        assert!(
            held == data,
            "{key} is not on the replica when acknowledged"
        );
    }

    replica.stop();
    let started = Instant::now();
    let response = app.put("unconfirmed", "txt", b"on one machine only").await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 504);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "replica_ack_timeout", "{body}");
    assert_eq!(body["key"], "unconfirmed");
    assert!(
        waited >= Duration::from_millis(700),
        "answered after {waited:?}"
    );
    // The write stands on the primary, at the version the answer gave.
    let read: serde_json::Value = app.get("unconfirmed").await.json().await.unwrap();
    assert_eq!(read["version"], body["version"]);
    assert_eq!(
        read["data"],
        blobproxy::domain::encode_base64(b"on one machine only")
    );
    // A delete waits the same way.
    let response = app.delete("replicated/0").await;
    assert_eq!(response.status(), 504);
    assert_eq!(app.get("replicated/0").await.status(), 404);
}
