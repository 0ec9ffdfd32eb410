//! `blobproxy flush`: waits until every write is in S3 (for maintenance windows, before
//! scaling Redis down), with a progress bar.

use std::time::Duration;

use crate::config::Settings;
use crate::startup::Dependencies;

/// Fails when the timeout passes, or when the only writes left are dead letters (they wait for
/// `replay-dead-letters`).
pub async fn flush(settings: Settings, timeout: Option<Duration>) -> anyhow::Result<()> {
    let deps = Dependencies::connect(&settings).await?;
    let service = deps.service(&settings);
    let first = service.status().await?;
    let bar = indicatif::ProgressBar::new(first.dirty);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} writes in S3 [{bar:40}] {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = tokio::time::Instant::now();
    loop {
        let status = service.status().await?;
        bar.set_length(bar.length().unwrap_or(0).max(status.dirty));
        bar.set_position(bar.length().unwrap_or(0) - status.dirty);
        if status.dirty == 0 {
            bar.finish_and_clear();
            println!("flushed: every write is in S3");
            return Ok(());
        }
        if status.dirty <= status.dead_letters {
            bar.abandon();
            anyhow::bail!(
                "{} dead-lettered write(s) are not in S3; see GET /status, fix S3, then run \
                 blobproxy replay-dead-letters",
                status.dead_letters
            );
        }
        if timeout.is_some_and(|t| started.elapsed() > t) {
            bar.abandon();
            anyhow::bail!(
                "{} write(s) still not in S3 after the timeout",
                status.dirty
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
