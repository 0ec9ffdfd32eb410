#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every test.
# Tests start their own redis-server, s3s-fs, nginx and dnsmasq on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh

report=target/tmp/durability.log
mkdir -p target/tmp && rm -f "$report"
log=$(mktemp)
status=0
cargo nextest run --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The fault-injection tests record what they checked; show it in one place.
if [ -s "$report" ]; then
  echo
  echo "== durability (fault injection) =="
  sort "$report"
  awk -F'writes acknowledged=| faults injected=| writes lost=' \
    '{ a += $2; f += $3; l += $4 } END { printf "total: writes acknowledged=%d faults injected=%d writes lost=%d\n", a, f, l }' "$report"
  echo
  grep -E '^ +Summary ' "$log" | tail -n 1
fi
rm -f "$log"
exit "$status"
