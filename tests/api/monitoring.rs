//! The monitoring that ships with blobproxy: the Prometheus rules pass their own tests under
//! the real `promtool`, and every metric the dashboard and the rules name is one a running
//! replica and worker export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new(program("promtool"))
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_their_promtool_tests() {
    let checked = promtool(&["check", "rules", "blobproxy.rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    promtool(&["check", "config", "prometheus.yml"]);
    let tested = promtool(&["test", "rules", "blobproxy.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The PromQL of every panel of the dashboard, with Grafana's variables given values.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/blobproxy.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| {
            target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$job", "blobproxy")
        })
        .collect();
    assert!(queries.len() >= 15, "the dashboard lost its panels");
    queries
}

#[test]
fn the_dashboard_queries_are_valid_promql() {
    // promtool parses rule files; each panel's query becomes a recording rule of one.
    let dir = tempfile::tempdir().unwrap();
    let rules: String = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(i, expr)| format!("      - record: panel_{i}\n        expr: {expr:?}\n"))
        .collect();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .unwrap();
    let checked = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(checked.contains("SUCCESS"), "{checked}");
}

/// The `expr` of every rule, and the names of the recording rules.
fn rules() -> (Vec<String>, BTreeSet<String>) {
    let text = std::fs::read_to_string(deploy("prometheus/blobproxy.rules.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_owned());
            if let Some(name) = rule["record"].as_str() {
                recorded.insert(name.to_owned());
            }
        }
    }
    (exprs, recorded)
}

/// The metric names a PromQL expression reads: identifiers outside label matchers, ranges,
/// strings and grouping clauses, that are neither functions nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const OPERATORS: &[&str] = &["and", "or", "unless", "bool", "offset"];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| {
        let mut j = from;
        while j < chars.len() && chars[j] != close {
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '"' {
            i = skip_to(i + 1, '"');
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let rest: String = chars[next..].iter().collect();
            // A function call, or an aggregation with its grouping first (`sum by (a) (...)`).
            let called = rest.starts_with('(')
                || ["by ", "by(", "without ", "without("]
                    .iter()
                    .any(|g| rest.starts_with(g))
                    && !GROUPING.contains(&word.as_str());
            if GROUPING.contains(&word.as_str()) && called {
                i = skip_to(next + 1, ')');
            } else if !called
                && !OPERATORS.contains(&word.as_str())
                && !GROUPING.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else if c.is_ascii_digit() {
            // A number (0.99, 1e3): not a name.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_reads_only_the_series_of_an_expression() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket{job=~"a|b"}[5m]))) > 0.5 and on (job) up == 1"#,
    );
    let expected: BTreeSet<String> = ["http_request_duration_seconds_bucket", "up"]
        .map(String::from)
        .into();
    assert_eq!(names, expected);
}

/// Sample names in a scrape (`name{labels} value` or `name value`).
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{scrape}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_the_alerts_name_is_exported() {
    let mut backends = Backends::start_with_maxmemory("64mb").await;
    // With a mirror store, whose lag is exported too.
    let mirror = S3Server::start_kind(S3Kind::S3sFs).await;
    let settings = crate::mirrors::with_mirror(&backends, &mirror);
    let app = TestApp::spawn(&settings).await;
    let worker = TestWorker::spawn(&settings).await;
    // Traffic that touches every per-process metric: a write, a cached read, a read that
    // misses the cache (and S3: an error answer).
    assert_eq!(app.put("seen", "txt", b"seen").await.status(), 201);
    assert_eq!(app.get("seen").await.status(), 200);
    assert_eq!(app.get("never-written").await.status(), 404);
    backends.wait_until_drained(Duration::from_secs(20)).await;
    let scrape = app.metrics().await;
    let have = exported(&scrape);

    let (rule_exprs, recorded) = rules();
    // Made by Prometheus itself (whether the scrape worked), not by the service.
    let from_prometheus: BTreeSet<String> = ["up".to_owned()].into();
    for (what, exprs) in [("dashboard", dashboard_queries()), ("rules", rule_exprs)] {
        for expr in exprs {
            for name in metric_names(&expr) {
                assert!(
                    have.contains(&name)
                        || recorded.contains(&name)
                        || from_prometheus.contains(&name),
                    "the {what} query {expr:?} names {name}, which a replica does not export:\n{scrape}"
                );
            }
        }
    }
    assert_eq!(sample(&scrape, "blobproxy_ready"), 1.0);
    assert_eq!(sample(&scrape, "blobproxy_s3_up"), 1.0);
    assert_eq!(sample(&scrape, "blobproxy_redis_up"), 1.0);
    assert_eq!(sample(&scrape, "blobproxy_uploads_total"), 1.0);
    assert_eq!(
        sample(&scrape, "blobproxy_redis_memory_max_bytes"),
        64.0 * 1024.0 * 1024.0
    );
    let used = sample(&scrape, "blobproxy_redis_memory_used_bytes");
    assert!(used > 0.0 && used < 64.0 * 1024.0 * 1024.0, "{used}");
    assert!(
        scrape.contains("blobproxy_errors_total{code=\"not_found\"} 1"),
        "{scrape}"
    );

    // S3 goes down: the replica says it is not ready, and which dependency is down.
    backends.s3.stop();
    let scrape = app.metrics().await;
    assert_eq!(sample(&scrape, "blobproxy_ready"), 0.0);
    assert_eq!(sample(&scrape, "blobproxy_s3_up"), 0.0);
    assert_eq!(sample(&scrape, "blobproxy_redis_up"), 1.0);
    worker.stop().await;
}
