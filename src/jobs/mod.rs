//! The drain: jobs that move dirty blobs from Redis into S3.
//!
//! - [`queue`]: the apalis-redis queue, shared by the web replicas (push) and workers (pull).
//! - [`drain`]: what one job does for one key.
//! - [`worker`]: the apalis worker process around it.

pub mod drain;
pub mod queue;
pub mod worker;

pub use drain::Drainer;
pub use queue::{DrainJob, JobQueue, QueueKeys};
