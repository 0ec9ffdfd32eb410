//! `blobproxy flush`: waits until every write is in S3 (for maintenance windows, before
//! scaling Redis down), with a progress bar.

use std::time::Duration;

use crate::config::Settings;
use crate::service::Status;
use crate::startup::Dependencies;

/// Fails when the timeout passes, or when the only writes left are dead letters (they wait for
/// `replay-dead-letters`). With mirror stores, waits for them too: a key counts as left while
/// S3 or any mirror lacks its newest version.
pub async fn flush(settings: Settings, timeout: Option<Duration>) -> anyhow::Result<()> {
    let deps = Dependencies::connect(&settings).await?;
    let service = deps.service(&settings);
    let (left, _) = backlog(&service.status().await?);
    let bar = indicatif::ProgressBar::new(left);
    let stores = if settings.mirror_stores.is_empty() {
        "S3"
    } else {
        "every store"
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{pos}}/{{len}} writes in {stores} [{{bar:40}}] {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = tokio::time::Instant::now();
    loop {
        let status = service.status().await?;
        let (left, dead) = backlog(&status);
        bar.set_length(bar.length().unwrap_or(0).max(left));
        bar.set_position(bar.length().unwrap_or(0) - left);
        if left == 0 {
            bar.finish_and_clear();
            println!("flushed: every write is in {stores}");
            return Ok(());
        }
        if left <= dead {
            bar.abandon();
            anyhow::bail!(
                "{dead} dead-lettered write(s) are not in {stores}; see GET /status, fix the \
                 store, then run blobproxy replay-dead-letters"
            );
        }
        if timeout.is_some_and(|t| started.elapsed() > t) {
            bar.abandon();
            anyhow::bail!("{left} write(s) still not in {stores} after the timeout");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What is left to store (dirty records, and keys each mirror lacks), and how much of it is
/// dead letters.
fn backlog(status: &Status) -> (u64, u64) {
    let mirrors = status.mirrors.iter();
    let behind: u64 = mirrors.clone().map(|m| m.behind).sum();
    let dead: u64 = mirrors.map(|m| m.dead_letters).sum();
    (status.dirty + behind, status.dead_letters + dead)
}
