//! The clients: each draws its operations from the run's seed (writes raw and JSON, `wc=0` and
//! `wc=1`, deletes, reads from a random replica, listings) over a small key set, so keys are
//! overwritten and deleted often, and records each with when it started and ended and what it
//! was answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use super::history::{Answer, Kind, Op};
use crate::helpers::BUCKET;

/// Where the clients send their operations, and the history they fill.
pub struct Workload {
    pub seed: u64,
    /// nginx, for writes, deletes and listings.
    pub nginx: String,
    /// Each replica directly, for reads.
    pub replicas: Vec<String>,
    pub keys: Vec<String>,
    /// The S3 server itself (not through the fault proxy), read after each `wc=1` answer.
    pub s3: aws_sdk_s3::Client,
    pub started: Instant,
    pub history: Mutex<Vec<Op>>,
}

/// How a value is told apart: its id, then padding.
const SEPARATOR: u8 = b'|';

impl Workload {
    /// Runs client `client` until `until`.
    pub async fn client(self: Arc<Self>, client: usize, until: Instant) {
        let mut rng = StdRng::seed_from_u64(self.seed.wrapping_mul(1_000_003) + client as u64);
        let http = reqwest::Client::builder()
            // Longer than the service's own 10 s (`wc=1`), so its answer is what is recorded.
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let mut n = 0u64;
        while Instant::now() < until {
            n += 1;
            let key = self.keys[rng.random_range(0..self.keys.len())].clone();
            let roll: f64 = rng.random();
            let start = self.started.elapsed();
            let (kind, answer) = if roll < 0.30 {
                let value = format!("v{}.{client}.{n}", self.seed);
                let (wc, raw, padding) = (
                    rng.random_bool(0.2),
                    rng.random_bool(0.5),
                    rng.random_range(0..1500),
                );
                let answer = self.write(&http, &key, &value, wc, raw, padding).await;
                (Kind::Write { key, value, wc }, answer)
            } else if roll < 0.38 {
                let wc = rng.random_bool(0.2);
                let answer = self.delete(&http, &key, wc).await;
                (Kind::Delete { key, wc }, answer)
            } else if roll < 0.92 {
                let replica = rng.random_range(0..self.replicas.len());
                let answer = self.read(&http, &key, replica, rng.random_bool(0.5)).await;
                (Kind::Read { key, replica }, answer)
            } else {
                (Kind::List, self.list(&http).await)
            };
            let end = self.started.elapsed();
            let wc = matches!(
                kind,
                Kind::Write { wc: true, .. } | Kind::Delete { wc: true, .. }
            );
            let s3_after_ack = match (&kind, &answer) {
                (Kind::Write { key, .. } | Kind::Delete { key, .. }, Answer::Done { .. }) if wc => {
                    self.s3_version(key).await
                }
                _ => None,
            };
            self.history.lock().unwrap().push(Op {
                client,
                kind,
                start,
                end,
                answer,
                s3_after_ack,
            });
        }
    }

    async fn write(
        &self,
        http: &reqwest::Client,
        key: &str,
        value: &str,
        wc: bool,
        raw: bool,
        padding: usize,
    ) -> Answer {
        let mut body = value.as_bytes().to_vec();
        body.push(SEPARATOR);
        body.resize(body.len() + padding, b'.');
        let wc = if wc { 1 } else { 0 };
        let request = if raw {
            http.put(format!("{}/blobs/{key}?wc={wc}", self.nginx))
                .body(body)
        } else {
            http.post(format!("{}/put/?wc={wc}", self.nginx))
                .json(&serde_json::json!({"key": key, "extension": "bin",
                    "data": base64::engine::general_purpose::STANDARD.encode(&body)}))
        };
        acknowledged(request.send().await, 201).await
    }

    async fn delete(&self, http: &reqwest::Client, key: &str, wc: bool) -> Answer {
        let wc = if wc { 1 } else { 0 };
        let request = http.delete(format!("{}/blobs/{key}?wc={wc}", self.nginx));
        acknowledged(request.send().await, 200).await
    }

    async fn read(&self, http: &reqwest::Client, key: &str, replica: usize, raw: bool) -> Answer {
        let base = &self.replicas[replica];
        let url = if raw {
            format!("{base}/blobs/{key}")
        } else {
            format!("{base}/get/{key}")
        };
        let response = match http.get(url).send().await {
            Ok(response) => response,
            Err(e) => return Answer::Indeterminate(format!("no answer: {e}")),
        };
        match response.status().as_u16() {
            404 => Answer::Read(None),
            200 if raw => {
                let version = response
                    .headers()
                    .get("etag")
                    .and_then(|e| e.to_str().ok())
                    .and_then(|e| e.trim_matches('"').parse().ok());
                match (version, response.bytes().await) {
                    (Some(version), Ok(body)) => Answer::Read(Some((value_of(&body), version))),
                    _ => Answer::Indeterminate("a raw read broke off".into()),
                }
            }
            200 => match response.json::<serde_json::Value>().await {
                Ok(body) => {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(body["data"].as_str().unwrap_or_default())
                        .unwrap_or_default();
                    let version = body["version"].as_u64().unwrap_or(0);
                    Answer::Read(Some((value_of(&data), version)))
                }
                Err(e) => Answer::Indeterminate(format!("a read broke off: {e}")),
            },
            status => Answer::Indeterminate(error_of(status, response).await),
        }
    }

    async fn list(&self, http: &reqwest::Client) -> Answer {
        let url = format!("{}/blobs?prefix=chaos/&limit=100", self.nginx);
        let response = match http.get(url).send().await {
            Ok(response) => response,
            Err(e) => return Answer::Indeterminate(format!("no answer: {e}")),
        };
        match response.status().as_u16() {
            200 => match response.json::<serde_json::Value>().await {
                Ok(body) => Answer::Listed(
                    body["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|item| item["key"].as_str().map(str::to_owned))
                        .collect(),
                ),
                Err(e) => Answer::Indeterminate(format!("a listing broke off: {e}")),
            },
            status => Answer::Indeterminate(error_of(status, response).await),
        }
    }

    /// The version S3 holds of `key` now (`Some(None)`: no object), if S3 answers.
    async fn s3_version(&self, key: &str) -> Option<(Option<u64>, Duration)> {
        let head = self.s3.head_object().bucket(BUCKET).key(key).send().await;
        let at = self.started.elapsed();
        match head {
            Ok(head) => {
                let version = head.metadata().and_then(|m| m.get("version")?.parse().ok());
                Some((Some(version.unwrap_or(0)), at))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Some((None, at)),
            Err(_) => None,
        }
    }
}

/// The value id a stored body starts with.
pub fn value_of(body: &[u8]) -> String {
    let id = body.split(|b| *b == SEPARATOR).next().unwrap_or_default();
    String::from_utf8_lossy(id).into_owned()
}

/// `Done` with the answer's version when it has status `ok`, else what it was.
async fn acknowledged(sent: reqwest::Result<reqwest::Response>, ok: u16) -> Answer {
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Answer::Indeterminate(format!("no answer: {e}")),
    };
    let status = response.status().as_u16();
    if status != ok {
        return Answer::Indeterminate(error_of(status, response).await);
    }
    match response.json::<serde_json::Value>().await {
        Ok(body) => match body["version"].as_u64() {
            Some(version) => Answer::Done { version },
            None => Answer::Indeterminate(format!("{status} without a version: {body}")),
        },
        Err(e) => Answer::Indeterminate(format!("{status}, then the body broke off: {e}")),
    }
}

/// `<status> <code>` of an error answer.
async fn error_of(status: u16, response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    format!("{status} {}", body["code"].as_str().unwrap_or("(no code)"))
}
