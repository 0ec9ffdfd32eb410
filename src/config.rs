//! One `Settings` struct, read from `BLOBPROXY_*` environment variables (flags mirror them).
//!
//! Every setting has a default and is checked by [`Settings::validate`] at start-up, so a bad
//! value stops the process with an error that names the variable instead of failing later.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::bail;

/// `BLOBPROXY_S3_VERSIONING`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    On,
    Off,
    Auto,
}

/// `BLOBPROXY_ACCESS_LOG`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    On,
    Errors,
    Off,
}

/// Settings shared by `serve`, `worker` and `all`.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server listens on.
    #[arg(long, env = "BLOBPROXY_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,

    /// Redis holding the write-back cache and the job queue.
    #[arg(
        long,
        env = "BLOBPROXY_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Seed nodes of a Redis Cluster, comma-separated `redis://host:port`: when set, blobproxy
    /// runs against the cluster (its keys spread over the masters) and BLOBPROXY_REDIS_URL is
    /// not used.
    #[arg(long, env = "BLOBPROXY_REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// Replicas of the Redis primary that must confirm a write (Redis `WAIT`) before it is
    /// answered; 0 answers once the primary has it.
    #[arg(long, env = "BLOBPROXY_REDIS_REPLICA_ACKS", default_value_t = 0)]
    pub redis_replica_acks: u32,

    /// How long a write waits for those replicas, in milliseconds; then it is answered 504
    /// `replica_ack_timeout` (it stands on the primary).
    #[arg(
        long,
        env = "BLOBPROXY_REDIS_REPLICA_ACK_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub redis_replica_ack_timeout_ms: u64,

    /// S3 endpoint; unset means AWS. Set it for MinIO or any S3-compatible server (path-style).
    #[arg(long, env = "BLOBPROXY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Bucket the blobs are stored in; created at start-up when missing.
    #[arg(long, env = "BLOBPROXY_S3_BUCKET", default_value = "blobs")]
    pub s3_bucket: String,

    /// S3 region.
    #[arg(long, env = "BLOBPROXY_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// Whether the bucket keeps every version, which `GET /history/<key>` and `?version=` read:
    /// `auto` asks the bucket at start-up; `on` also turns versioning on for a bucket blobproxy
    /// creates; `off` answers `/history` with `history_disabled`.
    #[arg(long, env = "BLOBPROXY_S3_VERSIONING", value_enum, default_value_t = Versioning::Auto)]
    pub s3_versioning: Versioning,

    /// Largest blob accepted, in decoded bytes.
    #[arg(long, env = "BLOBPROXY_MAX_BLOB_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_blob_bytes: usize,

    /// Blobs larger than this many bytes skip Redis and stream straight to S3 (multipart
    /// upload, memory bounded by two 8 MiB parts); the PUT answers once S3 has them.
    #[arg(long, env = "BLOBPROXY_WRITE_THROUGH_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub write_through_bytes: usize,

    /// How long a blob already safe in S3 stays in the cache, in seconds.
    #[arg(long, env = "BLOBPROXY_CACHE_TTL_SECS", default_value_t = 3600)]
    pub cache_ttl_secs: u64,

    /// With `?wc=1`, how long a write waits for S3 before answering 504 (it is still stored).
    #[arg(long, env = "BLOBPROXY_WC_TIMEOUT_SECS", default_value_t = 10)]
    pub wc_timeout_secs: u64,

    /// Seconds a request body may take to arrive in full; then 408 `body_timeout`. The default
    /// lets a 16 MiB upload through a 1 Mbit/s link.
    #[arg(long, env = "BLOBPROXY_BODY_TIMEOUT_SECS", default_value_t = 300)]
    pub body_timeout_secs: u64,

    /// Seconds a request body may stall (no byte arriving) before it is cut with 408.
    #[arg(long, env = "BLOBPROXY_BODY_IDLE_SECS", default_value_t = 15)]
    pub body_idle_secs: u64,

    /// Seconds a replica keeps serving after SIGTERM before it stops accepting connections:
    /// nginx re-resolves the replicas every 5 s, so by then it sends nothing here any more and
    /// no request meets a closing connection. `/readyz` answers 503 meanwhile. `serve` only
    /// (`all` has no nginx in front and stops at once).
    #[arg(long, env = "BLOBPROXY_SHUTDOWN_DELAY_SECS", default_value_t = 6)]
    pub shutdown_delay_secs: u64,

    /// Uploads one worker process runs at once. S3 answers a PUT in tens of milliseconds, so
    /// a worker drains at most this many objects per such latency: many small uploads in
    /// flight cost little (see `BLOBPROXY_WORKER_MAX_BYTES` for large ones).
    #[arg(long, env = "BLOBPROXY_WORKER_CONCURRENCY", default_value_t = 512)]
    pub worker_concurrency: usize,

    /// Bytes of blobs one worker process holds at once (read from Redis, on their way to S3).
    #[arg(long, env = "BLOBPROXY_WORKER_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub worker_max_bytes: usize,

    /// Threads of `blobproxy worker` (1: everything on one thread, the least CPU per object).
    #[arg(long, env = "BLOBPROXY_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,

    /// Nice value of `blobproxy worker` (0-19): draining yields the CPU to the replicas and Redis
    /// when they share a machine, so a burst of writes is answered first and drained after.
    #[arg(long, env = "BLOBPROXY_WORKER_NICE", default_value_t = 10)]
    pub worker_nice: i32,

    /// How often an idle worker looks for new jobs, in milliseconds (apalis-redis does not push).
    #[arg(long, env = "BLOBPROXY_WORKER_POLL_MS", default_value_t = 100)]
    pub worker_poll_ms: u64,

    /// Name of this replica, sent back in the `X-Served-By` header; defaults to the host name.
    #[arg(long, env = "BLOBPROXY_REPLICA_NAME")]
    pub replica_name: Option<String>,

    /// Which requests a replica logs one line for: `errors` (answers of 400 and up, with the
    /// detail a client is not told), `on` (every request), `off`. nginx in front logs every
    /// request already.
    #[arg(long, env = "BLOBPROXY_ACCESS_LOG", value_enum, default_value_t = AccessLog::Errors)]
    pub access_log: AccessLog,

    /// When set, every data endpoint needs `Authorization: Bearer <key>`.
    #[arg(long, env = "BLOBPROXY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file holding the API key (a Docker/Swarm secret); used when BLOBPROXY_API_KEY is unset.
    #[arg(long, env = "BLOBPROXY_API_KEY_FILE")]
    pub api_key_file: Option<std::path::PathBuf>,
}

impl Settings {
    /// Checks what clap's types cannot, naming the variable at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_blob_bytes == 0 || self.max_blob_bytes > 512 * 1024 * 1024 {
            bail!(
                "BLOBPROXY_MAX_BLOB_BYTES must be between 1 and 536870912 (Redis caps a value at 512 MiB)"
            );
        }
        if self.cache_ttl_secs == 0 {
            bail!("BLOBPROXY_CACHE_TTL_SECS must be at least 1");
        }
        if self.s3_bucket.len() < 3 || self.s3_bucket.len() > 63 {
            bail!("BLOBPROXY_S3_BUCKET must be 3 to 63 characters long");
        }
        if !self
            .s3_bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            bail!("BLOBPROXY_S3_BUCKET may only hold lowercase letters, digits, '-' and '.'");
        }
        if !self.redis_url.starts_with("redis://")
            && !self.redis_url.starts_with("rediss://")
            && !self.redis_url.starts_with("unix://")
        {
            bail!("BLOBPROXY_REDIS_URL must start with redis://, rediss:// or unix://");
        }
        if self
            .redis_cluster_nodes
            .iter()
            .any(|node| !node.starts_with("redis://") && !node.starts_with("rediss://"))
        {
            bail!("each of BLOBPROXY_REDIS_CLUSTER_NODES must start with redis:// or rediss://");
        }
        if let Some(endpoint) = &self.s3_endpoint
            && !endpoint.starts_with("http://")
            && !endpoint.starts_with("https://")
        {
            bail!("BLOBPROXY_S3_ENDPOINT must start with http:// or https://");
        }
        if self.redis_replica_acks > 16 {
            bail!("BLOBPROXY_REDIS_REPLICA_ACKS must be between 0 and 16");
        }
        if !(1..=60_000).contains(&self.redis_replica_ack_timeout_ms) {
            bail!("BLOBPROXY_REDIS_REPLICA_ACK_TIMEOUT_MS must be between 1 and 60000");
        }
        if self.wc_timeout_secs == 0 || self.wc_timeout_secs > 3600 {
            bail!("BLOBPROXY_WC_TIMEOUT_SECS must be between 1 and 3600");
        }
        if !(1..=3600).contains(&self.body_timeout_secs) {
            bail!("BLOBPROXY_BODY_TIMEOUT_SECS must be between 1 and 3600");
        }
        if !(1..=self.body_timeout_secs).contains(&self.body_idle_secs) {
            bail!("BLOBPROXY_BODY_IDLE_SECS must be between 1 and BLOBPROXY_BODY_TIMEOUT_SECS");
        }
        if self.shutdown_delay_secs > 60 {
            bail!("BLOBPROXY_SHUTDOWN_DELAY_SECS must be between 0 and 60");
        }
        if self.worker_concurrency == 0 || self.worker_concurrency > 1024 {
            bail!("BLOBPROXY_WORKER_CONCURRENCY must be between 1 and 1024");
        }
        if !(1024 * 1024..=16 * 1024 * 1024 * 1024).contains(&self.worker_max_bytes) {
            bail!("BLOBPROXY_WORKER_MAX_BYTES must be between 1048576 (1 MiB) and 16 GiB");
        }
        if !(1..=256).contains(&self.worker_threads) {
            bail!("BLOBPROXY_WORKER_THREADS must be between 1 and 256");
        }
        if !(0..=19).contains(&self.worker_nice) {
            bail!("BLOBPROXY_WORKER_NICE must be between 0 and 19");
        }
        if !(10..=30_000).contains(&self.worker_poll_ms) {
            bail!("BLOBPROXY_WORKER_POLL_MS must be between 10 and 30000");
        }
        self.resolved_api_key()?;
        Ok(())
    }

    /// The API key from `BLOBPROXY_API_KEY` or `BLOBPROXY_API_KEY_FILE`, if auth is on.
    pub fn resolved_api_key(&self) -> anyhow::Result<Option<String>> {
        let key = match (&self.api_key, &self.api_key_file) {
            (Some(_), Some(_)) => {
                bail!("set BLOBPROXY_API_KEY or BLOBPROXY_API_KEY_FILE, not both")
            }
            (Some(key), None) => key.trim().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| {
                    anyhow::anyhow!("cannot read BLOBPROXY_API_KEY_FILE={}: {e}", path.display())
                })?
                .trim()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if key.len() < 16 {
            bail!("the API key (BLOBPROXY_API_KEY or its file) must be at least 16 characters");
        }
        Ok(Some(key))
    }

    /// The Redis blobproxy runs against: the cluster when seed nodes are set, else the one
    /// server at BLOBPROXY_REDIS_URL.
    pub fn redis_target(&self) -> RedisTarget {
        if self.redis_cluster_nodes.is_empty() {
            RedisTarget::Single(self.redis_url.clone())
        } else {
            RedisTarget::Cluster(self.redis_cluster_nodes.clone())
        }
    }

    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }

    /// The replica name, falling back to the host name (a container id under Docker).
    pub fn replica(&self) -> String {
        self.replica_name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_owned())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "blobproxy".to_owned())
        })
    }
}

/// Where Redis is: one server, or a cluster's seed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A Redis URL.
    Single(String),
    /// Seed nodes (`redis://host:port`); the client learns the rest of the cluster from them.
    Cluster(Vec<String>),
}
