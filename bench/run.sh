#!/usr/bin/env bash
# The benchmark, in one command: installs what it needs (wrk, the servers, a Python venv with
# boto3 for presigned S3 URLs and matplotlib for the chart), builds the release binary, runs
# bench/bench.py (under 10 minutes), and leaves bench/results.json and bench/results.png.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh
# wrk loads the topology; openssl makes the certificates of the Redis-over-TLS phase.
if ! command -v wrk >/dev/null || ! command -v openssl >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk openssl >/dev/null
fi
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q boto3 matplotlib
fi
cargo build --release --quiet --bins --example delay_proxy --example bare_replica --example bare_copy
exec bench/.venv/bin/python bench/bench.py "$@"
