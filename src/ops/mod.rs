//! Operator commands, each a client of the service (or of a running replica): they hold no
//! logic of the data path.
//!
//! - [`flush`]: wait until every write is in S3.
//! - [`replay_dead_letters`]: give every dead-lettered key another drain.
//! - [`loadgen`]: write (and read back) random blobs against a running deployment.
//! - [`healthcheck`]: the Docker `HEALTHCHECK` probe of an image without curl.

mod flush;
pub mod healthcheck;
pub mod loadgen;

pub use flush::flush;

use crate::config::Settings;
use crate::startup::Dependencies;

/// `blobproxy replay-dead-letters`: gives every dead-lettered key another drain. Returns how
/// many keys were queued.
pub async fn replay_dead_letters(settings: Settings) -> anyhow::Result<u64> {
    let deps = Dependencies::connect(&settings).await?;
    Ok(deps.service(&settings).replay_dead_letters().await?)
}
