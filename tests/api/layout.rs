//! The code's shape, checked: modules follow the data flow (each uses only those below it),
//! no file grows past 300 lines, and no two files share a name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each one may use. Anything missing here may use nothing of the
/// crate; `startup` wires everything and `main` only picks a run mode.
const MAY_USE: &[(&str, &[&str])] = &[
    ("store", &["domain", "config"]),
    ("cache", &["domain", "queue", "redis_link"]),
    ("queue", &["redis_link"]),
    ("redis_link", &["config"]),
    ("jobs", &["cache", "queue", "store", "domain", "shutdown"]),
    ("service", &["cache", "queue", "store", "domain", "metrics"]),
    ("http", &["service", "domain", "metrics"]),
    ("ops", &["startup", "service", "config", "domain"]),
];

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
        assert!(lines <= 300, "{} has {lines} lines", file.display());
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
