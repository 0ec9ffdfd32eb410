//! Redis restarts: once it answers again, no request fails on a connection that broke while it
//! was down (each replica holds several: one per HTTP thread, one shared, the queue's).

use std::time::Duration;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn once_a_restarted_redis_answers_no_request_fails() {
    let mut backends = Backends::start().await;
    backends.redis.stop();
    backends.redis =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (_web, base) = spawn_serve(&backends, &[], &dir.path().join("web.log")).await;
    let http = reqwest::Client::new();
    for i in 0..20 {
        let put = http
            .put(format!("{base}/blobs/before/{i}"))
            .body(format!("blob {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
    }
    // Every pooled connection has been used, then Redis dies (SIGKILL) and comes back.
    backends.redis.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    backends.redis.restart().await;
    let url = backends.redis.url();
    eventually(
        Duration::from_secs(10),
        "PONG from the restarted Redis",
        || {
            let url = url.clone();
            async move {
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            }
        },
    )
    .await;

    // From here, every request succeeds: reads, writes, /status, /readyz, many at once so
    // that each of the replica's connections meets its broken socket.
    let mut failures = Vec::new();
    for round in 0..5 {
        let requests = (0..20).map(|i| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let (what, response) = match i % 4 {
                    0 => (
                        "GET",
                        http.get(format!("{base}/blobs/before/{i}")).send().await,
                    ),
                    1 => (
                        "PUT",
                        http.put(format!("{base}/blobs/after/{round}/{i}"))
                            .body("after")
                            .send()
                            .await,
                    ),
                    2 => ("status", http.get(format!("{base}/status")).send().await),
                    _ => ("readyz", http.get(format!("{base}/readyz")).send().await),
                };
                let response = response.unwrap();
                let status = response.status().as_u16();
                let ok = if what == "PUT" { 201 } else { 200 };
                if status == ok {
                    return None;
                }
                Some(format!(
                    "{what} {i}: {status} {}",
                    response.text().await.unwrap()
                ))
            }
        });
        failures.extend(
            futures::future::join_all(requests)
                .await
                .into_iter()
                .flatten(),
        );
    }
    assert!(
        failures.is_empty(),
        "requests failed after Redis answered again: {failures:#?}"
    );
    let body = http
        .get(format!("{base}/blobs/before/3"))
        .send()
        .await
        .unwrap();
    assert_eq!(body.text().await.unwrap(), "blob 3");
}
