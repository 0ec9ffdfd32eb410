//! Operator commands, each a client of the service (or of a running replica): they hold no
//! logic of the data path.
//!
//! - [`flush`]: wait until every write is in S3.
//! - [`replay_dead_letters`]: give every dead-lettered key another drain.
//! - [`settle_dead_letter`]: read one dead-lettered blob out, or move it under a valid key.
//! - [`loadgen`]: write (and read back) random blobs against a running deployment.
//! - [`healthcheck`]: the Docker `HEALTHCHECK` probe of an image without curl.
//! - [`presign`]: a presigned URL, made with the replicas' secret.
//! - [`fill_mirror`]: back-fill a mirror store, or compare it with the primary one.

pub mod fill_mirror;
mod flush;
pub mod healthcheck;
pub mod loadgen;
pub mod presign;

pub use flush::flush;

use crate::config::Settings;
use crate::domain::BlobKey;
use crate::startup::Dependencies;

/// `blobproxy replay-dead-letters`: gives every dead-lettered key another drain, and every
/// key a mirror refused for good another copy. Returns how many of each.
pub async fn replay_dead_letters(settings: Settings) -> anyhow::Result<(u64, u64)> {
    let deps = Dependencies::connect(&settings).await?;
    let service = deps.service(&settings);
    let drains = service.replay_dead_letters().await?;
    Ok((drains, service.replay_mirror_dead_letters().await?))
}

/// `blobproxy dead-letters ...`: what an operator decides about one dead-lettered key.
#[derive(clap::Subcommand, Debug)]
pub enum DeadLetterAction {
    /// Write the key's blob (still in Redis) to standard output, or to a file with `--to`;
    /// also a key this version's rules refuse.
    Export {
        key: String,
        #[arg(long)]
        to: Option<std::path::PathBuf>,
    },
    /// Store the key's blob as a new write of NEW_KEY (which must be valid), drained to S3 as
    /// any other write, then drop KEY from the cache: how a key written under an earlier
    /// version's rules reaches S3.
    Move { key: String, new_key: String },
}

/// Carries out `action`; returns what to tell the operator.
pub async fn settle_dead_letter(
    settings: Settings,
    action: DeadLetterAction,
) -> anyhow::Result<String> {
    let deps = Dependencies::connect(&settings).await?;
    let service = deps.service(&settings);
    match action {
        DeadLetterAction::Export { key, to } => {
            let (blob, version) = service.dead_letter_blob(&key).await?;
            let Some(blob) = blob else {
                anyhow::bail!("{key:?} is a dead-lettered delete (version {version}): no bytes");
            };
            match &to {
                Some(path) => std::fs::write(path, &blob.data)?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &blob.data)?,
            }
            Ok(format!(
                "exported {key:?} version {version}: {} bytes",
                blob.data.len()
            ))
        }
        DeadLetterAction::Move { key, new_key } => {
            let new_key = BlobKey::parse(new_key)?;
            match service.move_dead_letter(&key, new_key).await? {
                Some(stored) => Ok(format!(
                    "moved {key:?} to {:?} as version {}; {key:?} left the cache",
                    stored.key.as_str(),
                    stored.version
                )),
                None => Ok(format!("{key:?} was a delete; it left the cache")),
            }
        }
    }
}
