//! blobproxy stores binary blobs by key in S3 and makes every write readable at once.
//!
//! The data flow, one module per step:
//!
//! ```text
//! http (routes) -> service (put/get) -> cache (Redis: blob + version + dirty state)
//!                                    -> jobs::queue (apalis-redis: "drain key K")
//! jobs::worker -> jobs::drain -> cache (newest dirty version) -> store (S3) -> cache (clean + TTL)
//! GET miss: service -> store (S3) -> cache (re-cached as clean, never over a newer dirty one)
//! ```
//!
//! - [`domain`]: keys, extensions, base64; pure.
//! - [`config`]: `Settings` from `BLOBPROXY_*` variables.
//! - [`error`]: `ApiError`, the only type that knows HTTP statuses.
//! - [`startup`]: wiring and the run modes (`serve`, `worker`, `all`).

pub mod cache;
pub mod config;
pub mod domain;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod jobs;
pub mod listing;
pub mod loadgen;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod store;
pub mod telemetry;
