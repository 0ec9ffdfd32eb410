//! Test harness: real `redis-server` and real `s3s-fs` processes on free loopback ports, and
//! the real application (in-process, port 0) or the real binary.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::Credentials;
pub use blobproxy::cache::layout::{ShardKeys, record};
use blobproxy::config::Settings;
pub use blobproxy::config::Versioning;

use blobproxy::startup::{Application, Dependencies};
use rand::RngCore as _;
use tokio::sync::oneshot;

pub const ACCESS_KEY: &str = "blobproxy-test";
pub const SECRET_KEY: &str = "blobproxy-test-secret";
pub const BUCKET: &str = "blobs";

/// A free port for a server a test starts, picked below Linux's ephemeral range (32768-60999):
/// a port from port 0 could be handed to another test's listener or outgoing connection before
/// the server binds it (CI once saw a test's Redis client talk to another test's HTTP server).
pub fn free_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Finds a program on PATH or in ~/.cargo/bin (where `cargo install` puts s3s-fs).
pub fn program(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed; run scripts/test.sh, which installs it")
        })
}

async fn wait_for_port(port: u16, what: &str) {
    // moto (Python) takes ~2 s to start on an idle machine, much more on a busy one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server on `port` answers an S3 listing while `child` runs; false when
/// `child` exits first (its port was taken).
async fn answers_as_s3(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let listing = http
            .get(format!("http://127.0.0.1:{port}/"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(answer) = listing
            && answer
                .text()
                .await
                .unwrap_or_default()
                .contains("ListAllMyBucketsResult")
            && child.try_wait().unwrap().is_none()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto did not answer on port {port} within 60 s");
}

/// A child process killed when dropped.
struct Proc(Child);

impl Proc {
    /// Fails the test when the server exited (it could not bind its port, which then belongs
    /// to something else that answered `wait_for_port`) rather than letting it talk to that.
    async fn assert_running(&mut self, what: &str, port: u16) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some(status) = self.0.try_wait().unwrap() {
            panic!("{what} on port {port} exited at start ({status}); was the port taken?");
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    proc: Option<Proc>,
    extra_args: Vec<String>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts redis-server with extra arguments, e.g. `["--appendonly", "yes"]`.
    pub async fn start_with(extra: &[&str]) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            proc: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.restart().await;
        server
    }

    /// A node of a Redis Cluster (`--cluster-enabled`, AOF on, fails over 2 s after its
    /// master stops answering). Its cluster bus port is set, not the default port + 10000:
    /// that lands in 30000-42000, where other tests' servers and the kernel's ephemeral ports
    /// (32768 and up) can take it before the node binds it (seen once in CI: "exited at
    /// start"). Bus ports come from 12000-20000, which nothing else here uses.
    pub async fn start_cluster_node() -> Self {
        Self::start_cluster_node_with(&[]).await
    }

    /// A cluster node as [`RedisServer::start_cluster_node`], with extra arguments (TLS).
    pub async fn start_cluster_node_with(more: &[&str]) -> Self {
        let port = free_port();
        let bus_port = loop {
            let bus_port = rand::random_range(12_000..20_000);
            if TcpListener::bind(("127.0.0.1", bus_port)).is_ok() {
                break bus_port;
            }
        };
        let bus_port = bus_port.to_string();
        let extra = [
            "--cluster-port",
            &bus_port,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
            "--appendonly",
            "yes",
        ];
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().unwrap(),
            proc: None,
            extra_args: extra.iter().chain(more).map(|s| s.to_string()).collect(),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(|p| p.0.id())
    }

    /// SIGKILL: Redis gets no chance to write anything beyond what its AOF already has.
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// (Re)starts on the same port and directory.
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new(program("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .spawn()
            .expect("cannot start redis-server");
        self.proc = Some(Proc(child));
        wait_for_port(self.port, "redis-server").await;
        let proc = self.proc.as_mut().unwrap();
        proc.assert_running("redis-server", self.port).await;
    }

    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

/// Which S3-compatible server a test runs: s3s-fs (keys as files, no versions) or moto (closer
/// to AWS: versioning, `a` beside `a/b`; no signature checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    S3sFs,
    Moto,
}

pub struct S3Server {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub kind: S3Kind,
    /// The secret s3s-fs takes at its next (re)start, when not the tests' own.
    pub secret_key: Option<String>,
    proc: Option<Proc>,
}

/// The Python venv `scripts/install-deps.sh` fills (schemathesis, moto).
pub fn venv() -> PathBuf {
    std::env::var_os("BLOBPROXY_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/blobproxy/venv")
        })
}

impl S3Server {
    pub async fn start_kind(kind: S3Kind) -> Self {
        let mut server = S3Server {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            kind,
            secret_key: None,
            proc: None,
        };
        server.restart().await;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        self.proc = None;
    }

    pub async fn restart(&mut self) {
        self.stop();
        match self.kind {
            S3Kind::S3sFs => {
                let child = Command::new(program("s3s-fs"))
                    .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
                    .args(["--access-key", ACCESS_KEY, "--secret-key"])
                    .arg(self.secret_key.as_deref().unwrap_or(SECRET_KEY))
                    .arg(self.dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("cannot start s3s-fs; run scripts/install-deps.sh");
                self.proc = Some(Proc(child));
                wait_for_port(self.port, "s3s-fs").await;
                let proc = self.proc.as_mut().unwrap();
                proc.assert_running("s3s-fs", self.port).await;
            }
            // Keeps everything in memory: a restart empties it. moto takes seconds to bind its
            // port, long enough for another test's server to take it first: the port counts as
            // moto's only once it answers as S3 while moto runs; else moto tries another.
            S3Kind::Moto => loop {
                let mut child = Command::new(venv().join("bin/moto_server"))
                    .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("cannot start moto; run scripts/install-deps.sh");
                if answers_as_s3(&mut child, self.port).await {
                    self.proc = Some(Proc(child));
                    return;
                }
                let _ = child.kill();
                let _ = child.wait();
                self.port = free_port();
            },
        }
    }

    /// A plain S3 client, to check what really landed in the bucket.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(credentials())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The object stored under `key`: bytes, Content-Type and metadata; `None` when absent.
    pub async fn object(&self, key: &str) -> Option<S3Object> {
        let out = self
            .client()
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .ok()?;
        let content_type = out.content_type().unwrap_or_default().to_owned();
        let metadata = out.metadata().cloned().unwrap_or_default();
        let data = out.body.collect().await.unwrap().into_bytes().to_vec();
        Some(S3Object {
            data,
            content_type,
            extension: metadata.get("extension").cloned().unwrap_or_default(),
            version: metadata
                .get("version")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// The object under `key` once S3 holds exactly `version` of it (s3s-fs may show an
    /// object's bytes a moment before its metadata, so waiting on the bytes alone is racy).
    pub async fn object_at(&self, key: &str, version: u64) -> Option<S3Object> {
        self.object(key).await.filter(|o| o.version == version)
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut pages = self
            .client()
            .list_objects_v2()
            .bucket(BUCKET)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let Ok(page) = page else { break };
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct S3Object {
    pub data: Vec<u8>,
    pub content_type: String,
    pub extension: String,
    pub version: u64,
}

pub fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "blobproxy-tests")
}

/// Redis and S3, started for one test.
pub struct Backends {
    pub redis: RedisServer,
    pub s3: S3Server,
}

impl Backends {
    pub async fn start() -> Self {
        Self::start_on(S3Kind::S3sFs).await
    }

    /// Like [`Backends::start`], with a Redis that holds at most `maxmemory` (`4mb`) and, when
    /// full, may evict only keys with a TTL (what blobproxy requires): a Redis that fills up.
    pub async fn start_with_maxmemory(maxmemory: &str) -> Self {
        let mut backends = Self::start().await;
        backends.redis.stop();
        backends.redis = RedisServer::start_with(&[
            "--maxmemory",
            maxmemory,
            "--maxmemory-policy",
            "volatile-lru",
        ])
        .await;
        backends
    }

    /// Redis, and S3 from the server `kind`.
    pub async fn start_on(kind: S3Kind) -> Self {
        let (redis, s3) = tokio::join!(RedisServer::start(), S3Server::start_kind(kind));
        Backends { redis, s3 }
    }

    pub fn settings(&self) -> Settings {
        Self::settings_for(&self.redis, &self.s3.endpoint())
    }

    /// Settings for a replica on `redis` and the S3 server at `s3_endpoint`.
    pub fn settings_for(redis: &RedisServer, s3_endpoint: &str) -> Settings {
        // The service's own defaults, but for what a test needs otherwise.
        let mut settings = Settings::defaults();
        settings.server.bind = "127.0.0.1:0".parse::<SocketAddr>().unwrap();
        settings.redis.url = redis.url();
        settings.s3.endpoint = Some(s3_endpoint.to_owned());
        settings.s3.bucket = BUCKET.into();
        // In-process servers stop through the test, not a signal.
        settings.server.shutdown_delay = Duration::ZERO;
        // Few jobs at a time and a quick poll: drains that tests wait on start at once.
        settings.worker.concurrency = 8;
        settings.worker.poll = Duration::from_millis(50);
        settings.worker.nice = 0;
        settings
    }

    /// Waits until no blob is dirty, i.e. the workers stored everything in S3.
    pub async fn wait_until_drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        let mut conn = self.redis.client().await;
        loop {
            let dirty: u64 = redis::cmd("ZCARD")
                .arg(redis_layout().dirty)
                .query_async(&mut conn)
                .await
                .unwrap_or(u64::MAX);
            if dirty == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{dirty} blobs still dirty after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A running replica of the HTTP app, on its own port.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(settings: &Settings) -> Self {
        let deps = Dependencies::connect_with(settings, Some(credentials()))
            .await
            .expect("cannot connect the app");
        let app = Application::build(settings, &deps).expect("cannot build the app");
        let address = format!("http://127.0.0.1:{}", app.port());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            http: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    pub async fn put(&self, key: &str, extension: &str, data: &[u8]) -> reqwest::Response {
        self.http
            .post(format!("{}/put/", self.address))
            .json(&serde_json::json!({
                "key": key,
                "extension": extension,
                "data": blobproxy::domain::encode_base64(data),
            }))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, key: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/get/{}", self.address, encode_key(key)))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, key: &str) -> reqwest::Response {
        self.http
            .delete(format!("{}/blobs/{}", self.address, encode_key(key)))
            .send()
            .await
            .unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn status(&self) -> serde_json::Value {
        self.http
            .get(format!("{}/status", self.address))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls `/status` until `ready` holds of it; returns it, or panics after `within`.
    pub async fn status_when(
        &self,
        within: Duration,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let ready = &ready;
        eventually(within, what, || async move {
            let status = self.status().await;
            ready(&status).then_some(status)
        })
        .await
    }

    /// GETs `path` (with its query) and returns the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.address);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// GETs a key and returns its decoded bytes and extension; panics unless 200.
    pub async fn get_bytes(&self, key: &str) -> (Vec<u8>, String) {
        let response = self.get(key).await;
        assert_eq!(response.status(), 200, "GET {key}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["key"], key);
        let data = blobproxy::domain::decode_base64(body["data"].as_str().unwrap()).unwrap();
        (data, body["extension"].as_str().unwrap().to_owned())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An in-process drain worker; stopped (gracefully) when dropped or by `stop`.
pub struct TestWorker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    pub async fn spawn(settings: &Settings) -> Self {
        let deps = Dependencies::connect_with(settings, Some(credentials()))
            .await
            .expect("cannot connect the worker");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(blobproxy::jobs::worker::run(
            deps.drainer(settings),
            deps.mirror_copiers(settings),
            deps.queue.clone(),
            settings.worker.concurrency,
            blobproxy::shutdown::from_future(async move {
                let _ = stopped.await;
            }),
            Duration::from_secs(2),
            "test".into(),
        ));
        TestWorker {
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Percent-encodes each segment of a key for a URL path.
pub fn encode_key(key: &str) -> String {
    key.split('/')
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The real binary with the settings that point it at `backends` (add or override with
/// `.env`); for one-shot commands like `flush` or `replay-dead-letters`.
pub fn blobproxy_command(backends: &Backends) -> Command {
    blobproxy_command_for(&backends.redis.url(), &backends.s3.endpoint())
}

/// The real binary pointed at the Redis at `redis_url` and the S3 at `s3_endpoint`.
pub fn blobproxy_command_for(redis_url: &str, s3_endpoint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_blobproxy"));
    command
        .env("BLOBPROXY_REDIS_URL", redis_url)
        .env("BLOBPROXY_S3_ENDPOINT", s3_endpoint)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    command
}

/// Runs a one-shot `blobproxy` command to its end; panics with what it said on stderr unless
/// it succeeded.
pub fn succeeds(command: &mut Command) -> std::process::Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A `blobproxy` child process; killed when dropped.
pub struct BlobproxyProcess {
    child: Child,
    pub name: String,
}

impl BlobproxyProcess {
    pub fn spawn(args: &[&str], backends: &Backends, env: &[(&str, String)], log: &Path) -> Self {
        Self::spawn_from(blobproxy_command(backends), args, env, log)
    }

    /// Like [`BlobproxyProcess::spawn`], from a command already pointed at its Redis and S3;
    /// appends to `log` (a restarted process keeps its predecessor's lines).
    pub fn spawn_from(
        mut command: Command,
        args: &[&str],
        env: &[(&str, String)],
        log: &Path,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = command
            .args(args)
            .env("BLOBPROXY_WORKER_POLL_MS", "50")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start blobproxy");
        BlobproxyProcess {
            child,
            name: args.join(" "),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Whether the process has exited (it is reaped if so).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BlobproxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `blobproxy serve` on a free loopback port, logging to `log`; returns it and its base URL
/// once it listens.
pub async fn spawn_serve(
    backends: &Backends,
    env: &[(&str, String)],
    log: &Path,
) -> (BlobproxyProcess, String) {
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("BLOBPROXY_BIND", format!("127.0.0.1:{port}")));
    let web = BlobproxyProcess::spawn(&["serve"], backends, &env, log);
    wait_for_addr(&format!("127.0.0.1:{port}"), "replica").await;
    (web, format!("http://127.0.0.1:{port}"))
}

pub async fn wait_for_addr(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Polls `check` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names of the Redis keys of a single Redis server (its one shard), as the cache lays
/// them out: tests look keys up here instead of spelling them.
pub fn redis_layout() -> ShardKeys {
    ShardKeys::single()
}

/// The DOM of `url` once headless Chromium has run its scripts (up to 10 s of page time).
/// The network is closed here: a page can reach only loopback.
pub async fn chromium_dom(url: &str) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is not installed (scripts/install-deps.sh installs it)");
    let profile = tempfile::tempdir().unwrap();
    let url = url.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
