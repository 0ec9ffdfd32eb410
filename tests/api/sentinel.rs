//! Redis Sentinel: three sentinels watching a master and its replica (Debian's redis-server in
//! sentinel mode); blobproxy follows the master they name through a failover, and with
//! `BLOBPROXY_REDIS_REPLICA_ACKS=1` loses no acknowledged write when the master is SIGKILLed.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::durability::{flag, keys, write_load};
use crate::helpers::*;
use crate::ledger::Ledger;

const NAME: &str = "blobs-master";

/// A master, its replica, and three sentinels that fail the master over 1 s after it stops
/// answering.
struct Watched {
    master: RedisServer,
    replica: RedisServer,
    sentinel_ports: Vec<u16>,
    _sentinels: Vec<KillOnDrop>,
    _dir: tempfile::TempDir,
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Watched {
    async fn start() -> Self {
        let master = RedisServer::start_with(&["--appendonly", "yes"]).await;
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(&[
            "--appendonly",
            "yes",
            "--replicaof",
            "127.0.0.1",
            &master_port,
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let sentinel_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let sentinels = sentinel_ports
            .iter()
            .map(|port| {
                let conf = dir.path().join(format!("sentinel-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                         sentinel monitor {NAME} 127.0.0.1 {master_port} 2\n\
                         sentinel down-after-milliseconds {NAME} 1000\n\
                         sentinel failover-timeout {NAME} 10000\n",
                        dir = dir.path().display()
                    ),
                )
                .unwrap();
                let child = Command::new(program("redis-server"))
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("cannot start redis-server --sentinel");
                KillOnDrop(child)
            })
            .collect();
        for port in &sentinel_ports {
            wait_for_addr(&format!("127.0.0.1:{port}"), "sentinel").await;
        }
        let watched = Watched {
            master,
            replica,
            sentinel_ports,
            _sentinels: sentinels,
            _dir: dir,
        };
        // A failover needs the sentinels to know the replica and each other.
        eventually(
            Duration::from_secs(30),
            "sentinels that know everyone",
            || async {
                for port in &watched.sentinel_ports {
                    let info: String = watched.ask(*port, &["INFO", "sentinel"]).await?;
                    let line = info.lines().find(|l| l.starts_with("master0:"))?;
                    (line.contains("slaves=1") && line.contains("sentinels=3")).then_some(())?;
                }
                Some(())
            },
        )
        .await;
        watched
    }

    async fn ask<T: redis::FromRedisValue>(&self, port: u16, words: &[&str]) -> Option<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let mut cmd = redis::cmd(words[0]);
        cmd.arg(&words[1..]);
        cmd.query_async(&mut conn).await.ok()
    }

    /// The master's port as the first sentinel names it.
    async fn named_master(&self) -> Option<u16> {
        let named: (String, u16) = self
            .ask(
                self.sentinel_ports[0],
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME],
            )
            .await?;
        Some(named.1)
    }

    fn settings(&self, s3: &S3Server) -> blobproxy::config::Settings {
        let mut settings = Backends::settings_for(&self.master, &s3.endpoint());
        settings.redis.sentinels = self
            .sentinel_ports
            .iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        settings.redis.sentinel_master = NAME.to_owned();
        // Only the scheme counts: the master comes from the sentinels.
        settings.redis.url = "redis://unused.invalid:1".to_owned();
        settings
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_under_writes_is_followed_to_its_replica_losing_no_confirmed_write() {
    let mut watched = Watched::start().await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    let mut settings = watched.settings(&s3);
    settings.redis.replica_acks = 1;
    let apps = vec![
        Arc::new(TestApp::spawn(&settings).await),
        Arc::new(TestApp::spawn(&settings).await),
    ];
    let _worker = TestWorker::spawn(&settings).await;
    let (ledger, stop) = (Ledger::default(), flag());
    let load = tokio::spawn(write_load(
        apps.clone(),
        ledger.clone(),
        keys("sentinel", 300),
        8,
        usize::MAX,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let old_master = watched.master.port;
    watched.master.stop();
    let killed = Instant::now();
    // Once the sentinels promote the replica, the dead master comes back (as a machine
    // restarts) and the sentinels make it the new master's replica: until then nothing can
    // confirm a write (REPLICA_ACKS=1 answers 504).
    let mut promoted_after = None;
    // The first answer from a live master (504: it took the write, nothing confirmed it yet).
    let mut followed_after = None;
    let window = loop {
        let response = apps[0].put("sentinel/probe", "bin", b"probe").await;
        let status = response.status();
        if followed_after.is_none() && (status == 201 || status == 504) {
            followed_after = Some(killed.elapsed());
        }
        if status == 201 {
            break killed.elapsed();
        }
        assert!(
            status == 503 || status == 504,
            "a write during failover fails cleanly or succeeds: {status}"
        );
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "writes still refused 40 s after the kill: {status}"
        );
        if promoted_after.is_none() && watched.named_master().await == Some(watched.replica.port) {
            promoted_after = Some(killed.elapsed());
            watched.master.restart().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "sentinel failover: replica promoted {promoted_after:?} after the SIGKILL (as the \
         sentinels named it); the blobproxy replica reached it after {followed_after:?}; writes acknowledged \
         again after {window:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    // Under load the sentinels may fail over again (back to the restarted old master): what
    // matters is that there is a master, and that nothing acknowledged was lost.
    let master = watched
        .named_master()
        .await
        .expect("the sentinels name a master");
    println!(
        "sentinel failover: master at the end {master} (old {old_master}, replica {})",
        watched.replica.port
    );

    // Everything acknowledged reaches S3 through the new master.
    let status = apps[0]
        .status_when(Duration::from_secs(90), "an empty backlog", |s| {
            s["dirty"] == 0 && s["queued_jobs"] == 0
        })
        .await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    let lost = ledger.lost_writes(&s3).await;
    ledger.report("sentinel failover, REPLICA_ACKS=1", 1, lost.len());
    assert!(ledger.acknowledged() > 0);
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_name_the_sentinels_do_not_know_stops_start_up_saying_so() {
    let watched = Watched::start().await;
    let s3 = S3Server::start_kind(S3Kind::S3sFs).await;
    let sentinels = watched
        .sentinel_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    let out = blobproxy_command_for("redis://unused.invalid:1", &s3.endpoint())
        .arg("serve")
        .env("BLOBPROXY_BIND", "127.0.0.1:0")
        .env("BLOBPROXY_REDIS_SENTINELS", &sentinels)
        .env("BLOBPROXY_REDIS_SENTINEL_MASTER", "nobody")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no sentinel of BLOBPROXY_REDIS_SENTINELS names a master called nobody"),
        "{stderr}"
    );
}
