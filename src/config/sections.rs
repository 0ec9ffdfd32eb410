//! The settings by consumer: what the HTTP server, Redis, S3, the worker and operations each
//! read. Each field is one `BLOBPROXY_*` variable (or `AWS_*_FILE`), with the flag of the same
//! name; durations and sizes are parsed as such (see [`super::units`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::units;

/// `BLOBPROXY_S3_VERSIONING`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    On,
    Off,
    Auto,
}

/// `BLOBPROXY_ACCESS_LOG`: which requests a replica logs a line for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// Every request.
    On,
    /// Answers of 400 and up.
    Errors,
    Off,
}

/// What a replica's HTTP server takes.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerSettings {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BLOBPROXY_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

    /// Largest blob accepted, decoded (bytes, or `16MiB`).
    #[arg(long = "max-blob-bytes", env = "BLOBPROXY_MAX_BLOB_BYTES", default_value = "16MiB",
          value_name = "SIZE", value_parser = units::bytes)]
    pub max_blob_bytes: usize,

    /// Blobs larger than this skip Redis and stream straight to S3 (multipart upload, memory
    /// bounded by two 8 MiB parts); the PUT answers once S3 has them (bytes, or `8MiB`).
    #[arg(long = "write-through-bytes", env = "BLOBPROXY_WRITE_THROUGH_BYTES",
          default_value = "8MiB", value_name = "SIZE", value_parser = units::bytes)]
    pub write_through_bytes: usize,

    /// With `?wc=1`, how long a write waits for S3 before answering 504 (it is still stored);
    /// seconds, or `10s`.
    #[arg(long = "wc-timeout-secs", env = "BLOBPROXY_WC_TIMEOUT_SECS", default_value = "10s",
          value_name = "DURATION", value_parser = units::seconds)]
    pub wc_timeout: Duration,

    /// How long a request body may take to arrive in full; then 408 `body_timeout`. The
    /// default lets a 16 MiB upload through a 1 Mbit/s link (seconds, or `5m`).
    #[arg(long = "body-timeout-secs", env = "BLOBPROXY_BODY_TIMEOUT_SECS", default_value = "5m",
          value_name = "DURATION", value_parser = units::seconds)]
    pub body_timeout: Duration,

    /// How long a request body may stall (no byte arriving) before it is cut with 408
    /// (seconds, or `15s`).
    #[arg(long = "body-idle-secs", env = "BLOBPROXY_BODY_IDLE_SECS", default_value = "15s",
          value_name = "DURATION", value_parser = units::seconds)]
    pub body_idle: Duration,

    /// How long a replica keeps serving after SIGTERM before it stops accepting connections:
    /// nginx re-resolves the replicas every 5 s, so by then it sends nothing here any more and
    /// no request meets a closing connection. `/readyz` answers 503 meanwhile. `serve` only
    /// (`all` has no nginx in front and stops at once); seconds, or `6s`.
    #[arg(long = "shutdown-delay-secs", env = "BLOBPROXY_SHUTDOWN_DELAY_SECS",
          default_value = "6s", value_name = "DURATION", value_parser = units::seconds)]
    pub shutdown_delay: Duration,

    /// When set, every data endpoint needs `Authorization: Bearer <key>`.
    #[arg(long, env = "BLOBPROXY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file holding the API key (a Docker/Swarm secret); used when BLOBPROXY_API_KEY is unset.
    #[arg(long, env = "BLOBPROXY_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// Where Redis is, and what a write asks of it.
#[derive(clap::Args, Debug, Clone)]
pub struct RedisSettings {
    /// Redis holding the write-back cache and the job queue.
    #[arg(
        long = "redis-url",
        env = "BLOBPROXY_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub url: String,

    /// Seed nodes of a Redis Cluster, comma-separated `redis://host:port`: when set, blobproxy
    /// runs against the cluster (its keys spread over the masters) and BLOBPROXY_REDIS_URL is
    /// not used.
    #[arg(
        long = "redis-cluster-nodes",
        env = "BLOBPROXY_REDIS_CLUSTER_NODES",
        value_delimiter = ','
    )]
    pub cluster_nodes: Vec<String>,

    /// Redis Sentinel: the sentinels, comma-separated `host:port`. When set, blobproxy
    /// connects to the master they name (BLOBPROXY_REDIS_SENTINEL_MASTER) and follows it
    /// through failovers; BLOBPROXY_REDIS_URL then only gives the scheme (`rediss://` for TLS),
    /// password and database of the connection to the master.
    #[arg(
        long = "redis-sentinels",
        env = "BLOBPROXY_REDIS_SENTINELS",
        value_delimiter = ','
    )]
    pub sentinels: Vec<String>,

    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    #[arg(
        long = "redis-sentinel-master",
        env = "BLOBPROXY_REDIS_SENTINEL_MASTER",
        default_value = "mymaster"
    )]
    pub sentinel_master: String,

    /// With `rediss://`: the CA certificate(s), PEM, that signed the Redis server's
    /// certificate (a private CA); unset trusts the system's CAs.
    #[arg(long = "redis-ca-file", env = "BLOBPROXY_REDIS_CA_FILE")]
    pub ca_file: Option<PathBuf>,

    /// With `rediss://` and a Redis that asks for client certificates (mutual TLS): this
    /// client's certificate chain, PEM; with BLOBPROXY_REDIS_CLIENT_KEY_FILE.
    #[arg(
        long = "redis-client-cert-file",
        env = "BLOBPROXY_REDIS_CLIENT_CERT_FILE"
    )]
    pub client_cert_file: Option<PathBuf>,

    /// The private key, PEM, of BLOBPROXY_REDIS_CLIENT_CERT_FILE.
    #[arg(
        long = "redis-client-key-file",
        env = "BLOBPROXY_REDIS_CLIENT_KEY_FILE"
    )]
    pub client_key_file: Option<PathBuf>,

    /// Replicas of the Redis primary that must confirm a write (Redis `WAIT`) before it is
    /// answered; 0 answers once the primary has it.
    #[arg(
        long = "redis-replica-acks",
        env = "BLOBPROXY_REDIS_REPLICA_ACKS",
        default_value_t = 0
    )]
    pub replica_acks: u32,

    /// How long a write waits for those replicas; then it is answered 504
    /// `replica_ack_timeout` (it stands on the primary). Milliseconds, or `1s`.
    #[arg(long = "redis-replica-ack-timeout-ms", env = "BLOBPROXY_REDIS_REPLICA_ACK_TIMEOUT_MS",
          default_value = "1s", value_name = "DURATION", value_parser = units::millis)]
    pub replica_ack_timeout: Duration,

    /// How long a blob already safe in S3 stays in the cache; seconds, or `1h`.
    #[arg(long = "cache-ttl-secs", env = "BLOBPROXY_CACHE_TTL_SECS", default_value = "1h",
          value_name = "DURATION", value_parser = units::seconds)]
    pub cache_ttl: Duration,
}

/// The object store.
#[derive(clap::Args, Debug, Clone)]
pub struct S3Settings {
    /// S3 endpoint; unset means AWS. Set it for MinIO or any S3-compatible server (path-style).
    #[arg(long = "s3-endpoint", env = "BLOBPROXY_S3_ENDPOINT")]
    pub endpoint: Option<String>,

    /// Bucket the blobs are stored in; created at start-up when missing.
    #[arg(
        long = "s3-bucket",
        env = "BLOBPROXY_S3_BUCKET",
        default_value = "blobs"
    )]
    pub bucket: String,

    /// S3 region.
    #[arg(
        long = "s3-region",
        env = "BLOBPROXY_S3_REGION",
        default_value = "us-east-1"
    )]
    pub region: String,

    /// Whether the bucket keeps every version, which `GET /history/<key>` and `?version=` read:
    /// `auto` asks the bucket at start-up; `on` also turns versioning on for a bucket blobproxy
    /// creates; `off` answers `/history` with `history_disabled`.
    #[arg(long = "s3-versioning", env = "BLOBPROXY_S3_VERSIONING", value_enum,
          default_value_t = Versioning::Auto)]
    pub versioning: Versioning,

    /// Mirror stores kept in step with this one, comma-separated names (`eu,onprem`); each is
    /// described by `BLOBPROXY_MIRROR_<NAME>_S3_ENDPOINT`, `_S3_BUCKET`, `_S3_REGION`,
    /// `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY` (and `_FILE` forms).
    #[arg(long = "mirrors", env = "BLOBPROXY_MIRRORS", value_delimiter = ',')]
    pub mirrors: Vec<String>,

    /// A file holding the access key id (a Docker/Swarm secret); with
    /// AWS_SECRET_ACCESS_KEY_FILE, used instead of the standard AWS credential chain.
    #[arg(long = "aws-access-key-id-file", env = "AWS_ACCESS_KEY_ID_FILE")]
    pub access_key_id_file: Option<PathBuf>,

    /// A file holding the secret access key (see AWS_ACCESS_KEY_ID_FILE).
    #[arg(
        long = "aws-secret-access-key-file",
        env = "AWS_SECRET_ACCESS_KEY_FILE"
    )]
    pub secret_access_key_file: Option<PathBuf>,
}

/// The drain worker.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerSettings {
    /// Uploads one worker process runs at once. S3 answers a PUT in tens of milliseconds, so
    /// a worker drains at most this many objects per such latency: many small uploads in
    /// flight cost little (see `BLOBPROXY_WORKER_MAX_BYTES` for large ones).
    #[arg(
        long = "worker-concurrency",
        env = "BLOBPROXY_WORKER_CONCURRENCY",
        default_value_t = 512
    )]
    pub concurrency: usize,

    /// Bytes of blobs one worker process holds at once (read from Redis, on their way to S3);
    /// bytes, or `64MiB`.
    #[arg(long = "worker-max-bytes", env = "BLOBPROXY_WORKER_MAX_BYTES", default_value = "64MiB",
          value_name = "SIZE", value_parser = units::bytes)]
    pub max_bytes: usize,

    /// Threads of `blobproxy worker` (1: everything on one thread, the least CPU per object).
    #[arg(
        long = "worker-threads",
        env = "BLOBPROXY_WORKER_THREADS",
        default_value_t = 1
    )]
    pub threads: usize,

    /// Nice value of `blobproxy worker` (0-19): draining yields the CPU to the replicas and Redis
    /// when they share a machine, so a burst of writes is answered first and drained after.
    #[arg(
        long = "worker-nice",
        env = "BLOBPROXY_WORKER_NICE",
        default_value_t = 10
    )]
    pub nice: i32,

    /// How often an idle worker looks for new jobs (apalis-redis does not push); milliseconds,
    /// or `100ms`.
    #[arg(long = "worker-poll-ms", env = "BLOBPROXY_WORKER_POLL_MS", default_value = "100ms",
          value_name = "DURATION", value_parser = units::millis)]
    pub poll: Duration,

    /// Longest wait between the turns of a key S3 keeps failing for (a few attempts each; the
    /// wait starts at 1 s and doubles). Shorter: such keys reach S3 sooner once it takes them
    /// again; longer: they cost S3 fewer requests meanwhile (seconds, or `1m`).
    #[arg(long = "worker-retry-max-secs", env = "BLOBPROXY_WORKER_RETRY_MAX_SECS",
          default_value = "30s", value_name = "DURATION", value_parser = units::seconds)]
    pub retry_max: Duration,
}

/// How a process presents itself to its operators.
#[derive(clap::Args, Debug, Clone)]
pub struct OpsSettings {
    /// Name of this replica, sent back in the `X-Served-By` header; defaults to the host name.
    #[arg(long = "replica-name", env = "BLOBPROXY_REPLICA_NAME")]
    pub replica_name: Option<String>,

    /// Which requests a replica logs one line for: `errors` (answers of 400 and up, with the
    /// detail a client is not told), `on` (every request), `off`. nginx in front logs every
    /// request already.
    #[arg(long = "access-log", env = "BLOBPROXY_ACCESS_LOG", value_enum,
          default_value_t = AccessLog::Errors)]
    pub access_log: AccessLog,

    /// Where to send traces, OpenTelemetry's OTLP over HTTP (`http://collector:4318`; spans
    /// go to its `/v1/traces`). Unset: no traces, and no cost.
    #[arg(long = "otlp-endpoint", env = "BLOBPROXY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// The share of requests traced when BLOBPROXY_OTLP_ENDPOINT is set, 0 to 1; a request
    /// whose caller's `traceparent` says sampled is always traced.
    #[arg(
        long = "otlp-sample-ratio",
        env = "BLOBPROXY_OTLP_SAMPLE_RATIO",
        default_value_t = 1.0
    )]
    pub otlp_sample_ratio: f64,
}
