#!/usr/bin/env bash
# Runs blobproxy locally with no Docker: starts redis-server and an S3-compatible server
# (s3s-fs) under .local/, then `blobproxy all` (server + worker) on http://127.0.0.1:8080.
# Ctrl-C stops everything. Data survives restarts (.local/redis, .local/s3).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/install-deps.sh

REDIS_PORT=${REDIS_PORT:-6379}
S3_PORT=${S3_PORT:-9000}
mkdir -p .local/redis .local/s3
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-blobproxy}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-blobproxy-secret}

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir .local/redis \
  --appendonly yes --rdbcompression no --maxmemory-policy volatile-lru --save "" >.local/redis.log 2>&1 &
pids+=($!)
s3s-fs --host 127.0.0.1 --port "$S3_PORT" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" .local/s3 >.local/s3.log 2>&1 &
pids+=($!)

export BLOBPROXY_BIND=${BLOBPROXY_BIND:-127.0.0.1:8080}
export BLOBPROXY_REDIS_URL=${BLOBPROXY_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export BLOBPROXY_S3_ENDPOINT=${BLOBPROXY_S3_ENDPOINT:-http://127.0.0.1:$S3_PORT}
cargo build --release
echo "blobproxy on http://$BLOBPROXY_BIND (redis :$REDIS_PORT, S3 :$S3_PORT; logs in .local/)"
target/release/blobproxy all &
pids+=($!)
wait -n
