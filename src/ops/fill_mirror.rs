//! `blobproxy backfill <mirror>`: copies what a mirror store lacks from the primary store (a
//! mirror added to a deployment that already holds objects), with a progress line; resumes
//! where a killed run stopped. `--verify` compares the two stores instead.

use std::sync::{Arc, OnceLock};

use crate::config::Settings;
use crate::startup::Dependencies;

#[derive(clap::Args, Debug, Clone)]
pub struct BackfillArgs {
    /// The mirror to fill, as named in BLOBPROXY_MIRRORS.
    pub mirror: String,
    /// Compare the mirror with the primary store instead of copying; exits non-zero when
    /// they differ (keys a copier is on its way to are counted apart, not as differences).
    #[arg(long)]
    pub verify: bool,
    /// Objects written to the mirror per second at most, so the back-fill leaves the primary
    /// store to the drain (0: no limit).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Keys copied at once.
    #[arg(long, default_value_t = 8)]
    pub keys_at_once: usize,
}

pub async fn backfill(settings: Settings, args: BackfillArgs) -> anyhow::Result<()> {
    let deps = Dependencies::connect(&settings).await?;
    let fill = deps.backfill(&args.mirror, args.keys_at_once, args.rate)?;
    let line = indicatif::ProgressBar::new_spinner();
    line.enable_steady_tick(std::time::Duration::from_millis(200));
    if args.verify {
        let found = fill
            .verify(|checked| line.set_message(format!("{checked} keys compared")))
            .await?;
        line.finish_and_clear();
        println!(
            "compared {} keys of mirror {}: {} missing, {} extra, {} differing, {} on their way",
            found.checked,
            args.mirror,
            found.missing_count,
            found.extra_count,
            found.differing_count,
            found.in_flight
        );
        for (what, keys) in [
            ("missing", &found.missing),
            ("extra", &found.extra),
            ("differing", &found.differing),
        ] {
            for key in keys {
                println!("{what}: {key}");
            }
        }
        anyhow::ensure!(
            found.clean(),
            "mirror {} differs from the primary store",
            args.mirror
        );
        return Ok(());
    }
    let start = fill.cursor().await?;
    if let Some(after) = &start.after {
        eprintln!(
            "resuming after {after:?} ({} objects copied before)",
            start.objects
        );
    }
    let histories = if fill.copies_histories() {
        " and their versions"
    } else {
        ""
    };
    // The keys left, counted beside the copy (a listing is far cheaper than the copies), make
    // the line a bar with an ETA once known.
    line.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} keys checked; {msg}")
            .expect("valid template"),
    );
    let left = Arc::new(OnceLock::new());
    let counting = {
        let (fill, left, after) = (fill.clone(), left.clone(), start.after.clone());
        tokio::spawn(async move {
            if let Ok(count) = fill.keys_after(after).await {
                let _ = left.set(count);
            }
        })
    };
    let bar = indicatif::ProgressStyle::with_template(
        "{spinner} [{bar:30}] {pos}/{len} keys checked, {per_sec}, eta {eta}; {msg}",
    )
    .expect("valid template")
    .progress_chars("=> ");
    let (done, looked_at) = fill
        .run(|cursor, looked_at| {
            if let (None, Some(left)) = (line.length(), left.get()) {
                line.set_length(*left);
                line.set_style(bar.clone());
            }
            line.set_position(looked_at);
            line.set_message(format!(
                "{} objects ({} versions) copied; at {:?}",
                cursor.objects,
                cursor.versions,
                cursor.after.as_deref().unwrap_or("")
            ))
        })
        .await?;
    counting.abort();
    line.finish_and_clear();
    println!(
        "back-filled mirror {}: {} objects{histories} copied ({} versions); {looked_at} keys \
         checked by this run",
        args.mirror, done.objects, done.versions
    );
    Ok(())
}
