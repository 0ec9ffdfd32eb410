#!/usr/bin/env bash
# A randomized fault run (tests/api/chaos/): clients write, delete, read and list through nginx
# and three replicas while a nemesis kills, pauses and cuts off processes, stops, slows and
# breaks S3, and fills or fails over Redis, at moments drawn from the seed; then a checker
# reads the whole history and ends its report with `anomalies: N` (exit 1 when N > 0).
#
#   scripts/chaos.sh [--seed N] [--duration SECONDS] [--topology single|cluster|both]
#                    [--replica-acks N]
#
# Defaults: the fixed seeds scripts/test.sh runs (22 for the single Redis, 12 for the cluster: each meets most kinds of fault),
# 50 s, both topologies. An hour: scripts/chaos.sh --seed 42 --duration 3600. Reports go to
# target/tmp/chaos-<topology>-<seed>.log. --replica-acks sets the cluster's
# BLOBPROXY_REDIS_REPLICA_ACKS (default 1); with 0 a failover may lose acknowledged writes by
# design, and what the checker finds is counted and shown instead of failing the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
topology=both
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) export CHAOS_SEED="$2"; shift 2 ;;
    --duration) export CHAOS_SECS="$2"; shift 2 ;;
    --topology) topology="$2"; shift 2 ;;
    --replica-acks) export CHAOS_REPLICA_ACKS="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see the top of $0)" >&2; exit 2 ;;
  esac
done
case "$topology" in
  single) filter='test(randomized_faults_against_a_single_redis)' ;;
  cluster) filter='test(randomized_faults_against_a_redis_cluster)' ;;
  both) filter='test(/randomized_faults_against/)' ;;
  *) echo "--topology is single, cluster or both" >&2; exit 2 ;;
esac
scripts/install-deps.sh >/dev/null
cargo nextest run --run-ignored only --no-capture --no-fail-fast -E "$filter"
