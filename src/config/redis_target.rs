//! Where Redis is and how to reach it, as the settings give it to `redis_link`: one server, a
//! cluster's seed nodes, or the master Redis Sentinel names; and the files TLS takes.

use std::path::PathBuf;

/// Where Redis is, and what its TLS takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub servers: RedisServers,
    pub tls: RedisTls,
}

impl RedisTarget {
    /// One server at `url`, with no TLS files (`rediss://` then trusts the system's CAs).
    pub fn single(url: impl Into<String>) -> Self {
        Self {
            servers: RedisServers::Single(url.into()),
            tls: RedisTls::default(),
        }
    }
}

/// One server, or a cluster's seed nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisServers {
    /// A Redis URL.
    Single(String),
    /// Seed nodes (`redis://host:port`); the client learns the rest of the cluster from them.
    Cluster(Vec<String>),
    /// The master that Redis Sentinel names, followed through failovers.
    Sentinel(Sentinels),
}

/// Where the sentinels are and how to reach the master they name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinels {
    /// `host:port` (or a `redis://` URL) of each sentinel.
    pub addresses: Vec<String>,
    /// The master's name in the sentinels' configuration (`sentinel monitor <name> ...`).
    pub master: String,
    /// A URL whose scheme (`rediss://` for TLS), user, password and database the master's
    /// connection takes; its host and port are replaced by the master's.
    pub template: String,
}

/// The PEM files of TLS to Redis (`rediss://`); none set: the system's CAs, no client
/// certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}
