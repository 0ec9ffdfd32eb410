//! The code's shape, checked: modules follow the data flow (each uses only those below it),
//! no file grows past 300 lines (unless it is one concept, listed), no two files share a
//! name, Redis keys are spelled only by the layout, and a type's fields stay private to the
//! module that declares it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each one may use. Anything missing here may use nothing of the
/// crate; `startup` wires everything and `main` only picks a run mode.
const MAY_USE: &[(&str, &[&str])] = &[
    ("store", &["domain", "config"]),
    ("cache", &["domain", "queue", "redis_link", "telemetry"]),
    ("queue", &["redis_link"]),
    ("redis_link", &["config"]),
    (
        "jobs",
        &["cache", "queue", "store", "domain", "shutdown", "telemetry"],
    ),
    ("service", &["cache", "queue", "store", "domain", "metrics"]),
    (
        "http",
        &["service", "domain", "metrics", "config", "telemetry"],
    ),
    ("ops", &["startup", "service", "config", "domain"]),
];

/// Files that may grow past 300 lines because what they hold is one concept, which cut in two
/// would be harder to follow: (path under `src/`, cap).
const LONGER: &[(&str, usize)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/cache/records.rs` -> `cache`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

#[test]
fn modules_use_only_what_is_below_them_in_the_data_flow() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if matches!(module.as_str(), "startup" | "main" | "lib") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let used: BTreeSet<&str> = text
            .match_indices("crate::")
            .filter_map(|(at, _)| {
                let rest = &text[at + "crate::".len()..];
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
                Some(&rest[..end])
            })
            .filter(|used| *used != module)
            .collect();
        for used in used {
            if !allowed
                .get(module.as_str())
                .is_some_and(|ok| ok.contains(&used))
            {
                wrong.push(format!("{} uses crate::{used}", file.display()));
            }
        }
        if text.contains("super::super") {
            wrong.push(format!("{} reaches two levels up", file.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "against the data flow:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn files_stay_small_and_names_are_not_repeated() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let lines = std::fs::read_to_string(file).unwrap().lines().count();
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cap = LONGER
            .iter()
            .find(|(path, _)| *path == relative)
            .map_or(300, |(_, cap)| *cap);
        assert!(lines <= cap, "{} has {lines} lines", file.display());
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name != "mod.rs" {
            by_name
                .entry(name)
                .or_default()
                .push(file.display().to_string());
        }
    }
    let repeated: Vec<_> = by_name.values().filter(|paths| paths.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "files with the same name: {repeated:?}"
    );
}

/// Every `.rs` file of `src/` and `tests/`, with its text.
fn crate_files() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            (file, text)
        })
        .collect()
}

#[test]
fn redis_keys_are_spelled_only_by_the_layout() {
    // The shards name their prefixes (`redis_link/shards.rs`); the cache's layout names every
    // key from them (`cache/layout/`). Everything else, tests included, asks `ShardKeys`.
    // (And this file, whose needles below are what it looks for.)
    let owners = [
        "src/redis_link/shards.rs",
        "src/cache/layout/",
        "tests/api/layout.rs",
    ];
    let mut spelled = Vec::new();
    for (file, text) in crate_files() {
        let path = file.to_string_lossy();
        if owners.iter().any(|owner| path.contains(owner)) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if ["\"bp:", "\"blobproxy:drain"]
                .iter()
                .any(|k| line.contains(k))
            {
                spelled.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        spelled.is_empty(),
        "Redis keys spelled outside the layout:\n{}",
        spelled.join("\n")
    );
}

#[test]
fn a_types_fields_are_private_to_the_module_that_declares_it() {
    // A `pub(super)` field lets one type's code spread over sibling files; a type whose code
    // needs several files makes them its child modules (as `store/s3/` does), which see its
    // private fields.
    let mut shared = Vec::new();
    for (file, text) in crate_files() {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if let Some(rest) = line.strip_prefix("pub(super) ") {
                let field = rest.split_once(':').is_some_and(|(name, _)| {
                    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
                if field {
                    shared.push(format!("{}:{}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        shared.is_empty(),
        "fields shared with a parent module:\n{}",
        shared.join("\n")
    );
}
