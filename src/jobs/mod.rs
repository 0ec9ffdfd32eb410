//! The drain: workers that move dirty blobs from Redis into S3.
//!
//! - [`drain`]: what one job does for one key (and why that never loses a write).
//! - [`turn`]: one turn of attempts at S3 for a key.
//! - [`worker`]: the apalis worker process around it, the sweep and the vacuum.
//! - [`mirror`]: the copiers that keep each mirror store in step with the primary one.

pub mod backfill;
mod backfill_check;
pub mod drain;
pub mod mirror;
mod turn;
pub mod worker;

pub use backfill::{Backfill, BackfillPace};
pub use backfill_check::Differences;
pub use drain::Drainer;
pub use mirror::{CopyPace, MirrorCopier};
