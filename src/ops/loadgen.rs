//! `blobproxy loadgen`: writes random blobs to a running service (through nginx or straight
//! to a replica), optionally reads each one back and compares the bytes, and prints req/s,
//! MB/s and latency percentiles. Exits non-zero on any error or mismatch, so it doubles as a
//! smoke test of a deployment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use rand::RngCore as _;

use crate::domain::encode_base64;

#[derive(clap::Args, Debug, Clone)]
pub struct LoadgenArgs {
    /// Base URL of the service (nginx or a replica).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Number of blobs to write.
    #[arg(long, default_value_t = 1000)]
    pub amount: u64,
    /// Size of each blob: bytes, or with a unit (64KiB, 1MiB, 10kB).
    #[arg(long, default_value = "10KiB", value_parser = parse_size)]
    pub size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Read every blob back after writing it and compare the bytes.
    #[arg(long)]
    pub verify: bool,
    /// Use the raw endpoints (PUT/GET /blobs/<key>) instead of the JSON ones.
    #[arg(long)]
    pub raw: bool,
    /// Write concern of each PUT: 0 (in Redis and queued) or 1 (in S3).
    #[arg(long, default_value_t = 0)]
    pub wc: u8,
    /// Key prefix; a random run id is appended so runs never collide.
    #[arg(long, default_value = "loadgen")]
    pub prefix: String,
    /// Print the summary as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `4096`, `64KiB`, `1MiB`, `10kB`, `2MB` into bytes.
pub fn parse_size(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a size like 64KiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, kB, KiB, MB, MiB)"
            ));
        }
    };
    Ok(number * factor)
}

/// Latencies of one kind of request.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: u64,
}

impl Samples {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank]
    }
}

enum Outcome {
    Put(Duration),
    Get(Duration, bool),
    Error(String),
}

pub async fn run(args: LoadgenArgs) -> anyhow::Result<()> {
    if args.wc > 1 {
        bail!("--wc must be 0 or 1");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let run_id = format!("{:08x}", rand::rng().next_u32());
    let bar = indicatif::ProgressBar::new(args.amount);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} blobs [{bar:40}] {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let args = Arc::new(args);
    let mismatches = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let outcomes: Vec<Vec<Outcome>> = futures::stream::iter(0..args.amount)
        .map(|i| {
            let (http, args, run_id) = (http.clone(), args.clone(), run_id.clone());
            let (bar, mismatches) = (bar.clone(), mismatches.clone());
            async move {
                let key = format!("{}/{run_id}/{i}", args.prefix);
                let outcomes = one_blob(&http, &args, &key).await;
                if outcomes.iter().any(|o| matches!(o, Outcome::Get(_, false))) {
                    mismatches.fetch_add(1, Ordering::Relaxed);
                }
                bar.inc(1);
                outcomes
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let (mut puts, mut gets) = (Samples::default(), Samples::default());
    let mut first_error = None;
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Outcome::Put(d) => puts.latencies.push(d),
            Outcome::Get(d, _) => gets.latencies.push(d),
            Outcome::Error(e) => {
                puts.errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    puts.latencies.sort();
    gets.latencies.sort();
    let mismatches = mismatches.load(Ordering::Relaxed);
    report(&args, elapsed, &puts, &gets, mismatches);
    if let Some(error) = first_error {
        bail!("{} request(s) failed; first: {error}", puts.errors);
    }
    if mismatches > 0 {
        bail!("{mismatches} blob(s) read back differently from what was written");
    }
    Ok(())
}

/// Writes one blob (and reads it back with `--verify`).
async fn one_blob(http: &reqwest::Client, args: &LoadgenArgs, key: &str) -> Vec<Outcome> {
    let mut data = vec![0u8; args.size];
    rand::rng().fill_bytes(&mut data);
    let started = Instant::now();
    let put = if args.raw {
        http.put(format!("{}/blobs/{key}?wc={}", args.url, args.wc))
            .header("content-type", "application/octet-stream")
            .body(data.clone())
    } else {
        http.post(format!("{}/put/?wc={}", args.url, args.wc))
            .json(&serde_json::json!({
                "key": key,
                "extension": "bin",
                "data": encode_base64(&data),
            }))
    };
    match check(put.send().await, 201).await {
        Ok(_) => {}
        Err(e) => return vec![Outcome::Error(format!("PUT {key}: {e}"))],
    }
    let mut outcomes = vec![Outcome::Put(started.elapsed())];
    if args.verify {
        let started = Instant::now();
        let path = if args.raw { "blobs" } else { "get" };
        match check(
            http.get(format!("{}/{path}/{key}", args.url)).send().await,
            200,
        )
        .await
        {
            Ok(body) => {
                let read = if args.raw {
                    Ok(body.to_vec())
                } else {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["data"].as_str().map(crate::domain::decode_base64))
                        .unwrap_or_else(|| {
                            Err(crate::domain::InvalidInput::Base64("no data".into()))
                        })
                        .map_err(|e| e.to_string())
                };
                outcomes.push(Outcome::Get(
                    started.elapsed(),
                    read.as_deref() == Ok(&data[..]),
                ));
            }
            Err(e) => outcomes.push(Outcome::Error(format!("GET {key}: {e}"))),
        }
    }
    outcomes
}

async fn check(
    sent: reqwest::Result<reqwest::Response>,
    expected: u16,
) -> anyhow::Result<bytes::Bytes> {
    let response = sent.context("request failed")?;
    let status = response.status().as_u16();
    let body = response.bytes().await.context("reading the answer")?;
    if status != expected {
        bail!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(body)
}

fn report(args: &LoadgenArgs, elapsed: Duration, puts: &Samples, gets: &Samples, mismatches: u64) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let row = |name: &str, s: &Samples| {
        let n = s.latencies.len() as f64;
        serde_json::json!({
            "op": name,
            "ok": s.latencies.len(),
            "errors": s.errors,
            "req_per_s": n / secs,
            "mb_per_s": n * args.size as f64 / secs / 1e6,
            "p50_ms": s.percentile(50.0).as_secs_f64() * 1e3,
            "p99_ms": s.percentile(99.0).as_secs_f64() * 1e3,
        })
    };
    let mut rows = vec![row("PUT", puts)];
    if args.verify {
        rows.push(row("GET", gets));
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"size": args.size, "concurrency": args.concurrency,
                "seconds": secs, "mismatches": mismatches, "rows": rows})
        );
        return;
    }
    println!(
        "{} blobs of {} bytes, concurrency {}, {:.2} s",
        args.amount, args.size, args.concurrency, secs
    );
    println!(
        "{:<4} {:>8} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "op", "ok", "errors", "req/s", "MB/s", "p50 ms", "p99 ms"
    );
    for r in &rows {
        println!(
            "{:<4} {:>8} {:>7} {:>10.1} {:>9.2} {:>9.2} {:>9.2}",
            r["op"].as_str().unwrap_or(""),
            r["ok"].as_u64().unwrap_or(0),
            r["errors"].as_u64().unwrap_or(0),
            r["req_per_s"].as_f64().unwrap_or(0.0),
            r["mb_per_s"].as_f64().unwrap_or(0.0),
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0)
        );
    }
    if args.verify {
        println!("mismatches: {mismatches}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }
}
