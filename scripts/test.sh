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
summary=$(grep -E '^ +Summary ' "$log" | tail -n 1 || true)
# The randomized fault runs (one short run per Redis topology, fixed seeds), one at a time
# and after the rest, so no other test's load shifts their faults; scripts/chaos.sh runs
# longer ones and other seeds.
if [ $# -eq 0 ]; then
  scripts/chaos.sh 2>&1 | tee -a "$log" || status=$?
fi
# The fault-injection tests record what they checked; show it in one place.
if [ -s "$report" ]; then
  echo
  echo "== durability (fault injection) =="
  sort "$report"
  awk -F'writes acknowledged=| faults injected=| writes lost=' \
    '{ a += $2; f += $3; l += $4 } END { printf "total: writes acknowledged=%d faults injected=%d writes lost=%d\n", a, f, l }' "$report"
  echo
  echo "$summary"
fi
if grep -qE '^(seed .*Redis|anomalies: )' "$log"; then
  echo
  echo "== randomized fault runs =="
  grep -E '^(seed .*Redis|anomalies: )' "$log"
fi
rm -f "$log"
exit "$status"
