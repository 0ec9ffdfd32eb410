//! blobproxy stores binary blobs by key in S3 and makes every write readable at once.
//!
//! The data flow, one module per step; each module uses only those below it in this map
//! (`docs/ARCHITECTURE.md` has the data flow, the Redis state, the drain's safety argument and
//! the queue contract at more length):
//!
//! ```text
//! http (routes, extractors, errors to JSON)
//!   -> service (put/get/delete/list/status; write-through; listing)
//!        -> cache (Redis: records, leases, backlog, dead letters) -> queue (job layout)
//!             -> redis_link (the connection both use: one server or a cluster; shards)
//!        -> store (BlobStore trait; S3)
//! jobs::worker -> jobs::drain -> cache (newest dirty version) -> store (S3) -> cache (clean)
//! ```
//!
//! - [`domain`]: keys, extensions, base64; pure.
//! - [`http`]: the edge, and [`http::error`]: `ApiError` and the table of error codes.
//! - [`service`]: every operation the edge offers, over a closed surface.
//! - [`cache`]: the Redis side of a blob; [`queue`]: the job queue's Redis layout;
//!   [`redis_link`]: the connection to Redis both use (one server, or a Redis Cluster),
//!   and the shards that say where each key's Redis state lives.
//! - [`store`]: object storage ([`store::BlobStore`], S3).
//! - [`jobs`]: the worker that drains the cache into the store.
//! - [`ops`]: operator commands (`flush`, `replay-dead-letters`, `loadgen`, `healthcheck`).
//! - [`startup`]: wiring and the run modes (`serve`, `worker`, `all`).
//! - [`config`], [`telemetry`], [`metrics`], [`shutdown`]: settings, logs, Prometheus, and
//!   the one shutdown signal.

pub mod cache;
pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod ops;
pub mod queue;
pub mod redis_link;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
