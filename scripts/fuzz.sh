#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the parsers that take client bytes: keys
# and paths, Range headers, the JSON write body. Each target runs SECONDS (default 20; the
# test suite's short run) and fails on any panic or broken invariant, leaving the input that
# broke it under fuzz/artifacts/. A longer run: scripts/fuzz.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
# cargo-fuzz passes nightly-only flags to rustc; the stable 1.95 toolchain takes them with
# RUSTC_BOOTSTRAP. No sanitizer: the code under test is safe Rust, and ASan needs nightly's
# standard library; panics and the targets' assertions are what is looked for.
export RUSTC_BOOTSTRAP=1
for target in key_and_path range json_write; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzzing $target for ${seconds}s"
  cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tail -n 4
done
