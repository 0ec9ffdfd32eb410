//! The settings, read from `BLOBPROXY_*` environment variables (flags mirror them), grouped
//! by who reads them ([`sections`]): the HTTP server, Redis, S3, the worker, operations. This
//! is the one place that reads the environment and files for settings (the API key's and the
//! S3 keys' secret files, the host name).
//!
//! Every setting has a default and is checked by [`Settings::validate`] before anything uses
//! it, so a bad value stops the process with an error that names the variable instead of
//! failing later.

mod browser;
mod mirror_stores;
mod redis_target;
mod sections;
pub mod units;

use std::time::Duration;

use anyhow::{Context as _, bail};

pub use browser::BrowserSettings;
pub use mirror_stores::MirrorSettings;
pub use redis_target::{RedisServers, RedisTarget, RedisTls, Sentinels};
pub use sections::{
    AccessLog, OpsSettings, RedisSettings, S3Settings, ServerSettings, Versioning, WorkerSettings,
};

/// Settings shared by `serve`, `worker`, `all` and the operator commands.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub s3: S3Settings,
    #[command(flatten)]
    pub worker: WorkerSettings,
    #[command(flatten)]
    pub ops: OpsSettings,
    #[command(flatten)]
    pub browser: BrowserSettings,
    /// The mirror stores `BLOBPROXY_MIRRORS` names, read by [`Settings::read_mirrors`] (their
    /// variables' names depend on the list).
    #[arg(skip)]
    pub mirror_stores: Vec<MirrorSettings>,
}

/// S3 keys read from secret files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Settings {
    /// Every setting at its default, whatever the environment holds (tests start from here).
    pub fn defaults() -> Self {
        Self::from_flags(&[]).expect("the defaults are valid settings")
    }

    /// Settings from `flags` alone, the environment ignored.
    fn from_flags(flags: &[&str]) -> Result<Self, String> {
        use clap::{Args as _, FromArgMatches as _};
        let command =
            Self::augment_args(clap::Command::new("blobproxy")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("blobproxy").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        Self::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    /// Checks what clap's types cannot, naming the variable at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let (server, redis, s3, worker) = (&self.server, &self.redis, &self.s3, &self.worker);
        let within = |value: Duration, range: std::ops::RangeInclusive<Duration>, what: &str| {
            if range.contains(&value) {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "{what} must be between {} and {}",
                    humantime::format_duration(*range.start()),
                    humantime::format_duration(*range.end())
                ))
            }
        };
        let secs = Duration::from_secs;
        if server.max_blob_bytes == 0 || server.max_blob_bytes > 512 * 1024 * 1024 {
            bail!(
                "BLOBPROXY_MAX_BLOB_BYTES must be between 1 and 536870912 (512 MiB: Redis caps a value there)"
            );
        }
        within(
            redis.cache_ttl,
            secs(1)..=secs(365 * 24 * 3600),
            "BLOBPROXY_CACHE_TTL_SECS",
        )?;
        if redis.cache_ttl.subsec_nanos() != 0 {
            bail!("BLOBPROXY_CACHE_TTL_SECS must be whole seconds (Redis expires by the second)");
        }
        if s3.bucket.len() < 3 || s3.bucket.len() > 63 {
            bail!("BLOBPROXY_S3_BUCKET must be 3 to 63 characters long");
        }
        if !s3
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            bail!("BLOBPROXY_S3_BUCKET may only hold lowercase letters, digits, '-' and '.'");
        }
        if !redis.url.starts_with("redis://")
            && !redis.url.starts_with("rediss://")
            && !redis.url.starts_with("unix://")
        {
            bail!("BLOBPROXY_REDIS_URL must start with redis://, rediss:// or unix://");
        }
        if redis
            .cluster_nodes
            .iter()
            .any(|node| !node.starts_with("redis://") && !node.starts_with("rediss://"))
        {
            bail!("each of BLOBPROXY_REDIS_CLUSTER_NODES must start with redis:// or rediss://");
        }
        if !redis.sentinels.is_empty() && !redis.cluster_nodes.is_empty() {
            bail!(
                "BLOBPROXY_REDIS_SENTINELS and BLOBPROXY_REDIS_CLUSTER_NODES exclude each other: a Redis is either a cluster or watched by sentinels"
            );
        }
        let tls_files = [
            &redis.ca_file,
            &redis.client_cert_file,
            &redis.client_key_file,
        ];
        let urls: Vec<&String> = if redis.cluster_nodes.is_empty() {
            vec![&redis.url]
        } else {
            redis.cluster_nodes.iter().collect()
        };
        if tls_files.iter().any(|f| f.is_some())
            && urls.iter().any(|url| !url.starts_with("rediss://"))
        {
            bail!(
                "BLOBPROXY_REDIS_CA_FILE and BLOBPROXY_REDIS_CLIENT_*_FILE take effect only with TLS: use rediss:// in BLOBPROXY_REDIS_URL or BLOBPROXY_REDIS_CLUSTER_NODES"
            );
        }
        if redis.client_cert_file.is_some() != redis.client_key_file.is_some() {
            bail!(
                "BLOBPROXY_REDIS_CLIENT_CERT_FILE and BLOBPROXY_REDIS_CLIENT_KEY_FILE go together: set both or neither"
            );
        }
        if let Some(endpoint) = &s3.endpoint
            && !endpoint.starts_with("http://")
            && !endpoint.starts_with("https://")
        {
            bail!("BLOBPROXY_S3_ENDPOINT must start with http:// or https://");
        }
        if redis.replica_acks > 16 {
            bail!("BLOBPROXY_REDIS_REPLICA_ACKS must be between 0 and 16");
        }
        within(
            redis.replica_ack_timeout,
            Duration::from_millis(1)..=secs(60),
            "BLOBPROXY_REDIS_REPLICA_ACK_TIMEOUT_MS",
        )?;
        within(
            server.wc_timeout,
            secs(1)..=secs(3600),
            "BLOBPROXY_WC_TIMEOUT_SECS",
        )?;
        within(
            server.body_timeout,
            secs(1)..=secs(3600),
            "BLOBPROXY_BODY_TIMEOUT_SECS",
        )?;
        within(
            server.body_idle,
            secs(1)..=server.body_timeout,
            "BLOBPROXY_BODY_IDLE_SECS (at most BLOBPROXY_BODY_TIMEOUT_SECS)",
        )?;
        within(
            server.shutdown_delay,
            secs(0)..=secs(60),
            "BLOBPROXY_SHUTDOWN_DELAY_SECS",
        )?;
        if worker.concurrency == 0 || worker.concurrency > 1024 {
            bail!("BLOBPROXY_WORKER_CONCURRENCY must be between 1 and 1024");
        }
        if !(1024 * 1024..=16 * 1024 * 1024 * 1024).contains(&worker.max_bytes) {
            bail!("BLOBPROXY_WORKER_MAX_BYTES must be between 1 MiB and 16 GiB");
        }
        if !(1..=256).contains(&worker.threads) {
            bail!("BLOBPROXY_WORKER_THREADS must be between 1 and 256");
        }
        if !(0..=19).contains(&worker.nice) {
            bail!("BLOBPROXY_WORKER_NICE must be between 0 and 19");
        }
        within(
            worker.poll,
            Duration::from_millis(10)..=secs(30),
            "BLOBPROXY_WORKER_POLL_MS",
        )?;
        if !(0.0..=1.0).contains(&self.ops.otlp_sample_ratio) {
            bail!("BLOBPROXY_OTLP_SAMPLE_RATIO must be between 0 and 1");
        }
        if let Some(url) = &self.ops.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("BLOBPROXY_OTLP_ENDPOINT must start with http:// or https://");
        }
        self.api_key()?;
        self.s3_keys()?;
        self.browser.validate()?;
        Ok(())
    }

    /// The API key from `BLOBPROXY_API_KEY` or `BLOBPROXY_API_KEY_FILE`, if auth is on.
    pub fn api_key(&self) -> anyhow::Result<Option<String>> {
        let key = match (&self.server.api_key, &self.server.api_key_file) {
            (Some(_), Some(_)) => {
                bail!("set BLOBPROXY_API_KEY or BLOBPROXY_API_KEY_FILE, not both")
            }
            (Some(key), None) => key.trim().to_owned(),
            (None, Some(path)) => read_secret(path, "BLOBPROXY_API_KEY_FILE")?,
            (None, None) => return Ok(None),
        };
        if key.len() < 16 {
            bail!("the API key (BLOBPROXY_API_KEY or its file) must be at least 16 characters");
        }
        Ok(Some(key))
    }

    /// S3 keys from Docker/Swarm secret files (`AWS_ACCESS_KEY_ID_FILE` and
    /// `AWS_SECRET_ACCESS_KEY_FILE`); `None` when neither is set, so the standard AWS chain
    /// applies.
    pub fn s3_keys(&self) -> anyhow::Result<Option<S3Keys>> {
        match (&self.s3.access_key_id_file, &self.s3.secret_access_key_file) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => Ok(Some(S3Keys {
                access_key_id: read_secret(id, "AWS_ACCESS_KEY_ID_FILE")?,
                secret_access_key: read_secret(secret, "AWS_SECRET_ACCESS_KEY_FILE")?,
            })),
            _ => {
                bail!("set both AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE, or neither")
            }
        }
    }

    /// The Redis blobproxy runs against: the cluster when seed nodes are set, else the one
    /// server at BLOBPROXY_REDIS_URL; and the files its TLS takes.
    pub fn redis_target(&self) -> RedisTarget {
        let servers = if !self.redis.cluster_nodes.is_empty() {
            RedisServers::Cluster(self.redis.cluster_nodes.clone())
        } else if !self.redis.sentinels.is_empty() {
            RedisServers::Sentinel(Sentinels {
                addresses: self.redis.sentinels.clone(),
                master: self.redis.sentinel_master.clone(),
                template: self.redis.url.clone(),
            })
        } else {
            RedisServers::Single(self.redis.url.clone())
        };
        RedisTarget {
            servers,
            tls: RedisTls {
                ca_file: self.redis.ca_file.clone(),
                client_cert_file: self.redis.client_cert_file.clone(),
                client_key_file: self.redis.client_key_file.clone(),
            },
        }
    }

    /// The replica name, falling back to the host name (a container id under Docker).
    pub fn replica(&self) -> String {
        self.ops.replica_name.clone().unwrap_or_else(host_name)
    }
}

/// The machine's (or container's) host name, `blobproxy` when it has none.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "blobproxy".to_owned())
}

/// A secret file's text, trimmed; the error names the variable that points at it.
fn read_secret(path: &std::path::Path, var: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {var}={}", path.display()))?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
