#!/usr/bin/env bash
# Runs the deployment for real on this machine's Docker engine, with no registry: builds the
# stand-in images (scripts/docker-images.sh) and the project's Dockerfile, then drives
# docker-compose.yml (with tests/docker/compose.test.yml swapping MinIO for s3s-fs):
# up, a round trip through nginx, the blob in S3, --scale web=3, a replica killed under
# writes, down/up keeping the blobs, down -v leaving nothing. Skips (exit 0) with one line
# when no Docker engine answers. Everything it starts, it removes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export DOCKER_BUILDKIT=0

if ! docker info >/dev/null 2>&1; then
  echo "test-docker: no Docker engine answers (docker info failed); skipping the deployment test"
  exit 0
fi
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
PROJECT=blobproxy-test
FILES=(-f docker-compose.yml -f tests/docker/compose.test.yml)
BASE=http://127.0.0.1:8000
fail() { echo "test-docker: FAIL: $*" >&2; exit 1; }
cleanup() { compose -p "$PROJECT" "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

scripts/docker-images.sh

started=$SECONDS
docker build -q --network host -t blobproxy:latest . >/dev/null
echo "built blobproxy:latest in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' blobproxy:latest | awk '{printf "%.1f MB", $1/1e6}'))"

cleanup
# put KEY DATA: a JSON write through nginx; prints the HTTP status.
put() {
  local data
  data=$(printf '%s' "$2" | base64 -w0)
  curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST "$BASE/put/" \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"extension\":\"txt\",\"data\":\"$data\"}"
}
# get KEY: the decoded bytes through nginx.
get() {
  curl -sf --max-time 20 "$BASE/get/$1" | python3 -c 'import sys,json,base64; print(base64.b64decode(json.load(sys.stdin)["data"]).decode(), end="")'
}
served_by() { curl -s -o /dev/null -D - --max-time 5 "$BASE/healthz" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }

echo "== compose up"
started=$SECONDS
compose -p "$PROJECT" "${FILES[@]}" up -d --no-build >/dev/null 2>&1 || { compose -p "$PROJECT" "${FILES[@]}" logs --tail 50; fail "compose up"; }
until [ "$(put first hello 2>/dev/null)" = 201 ]; do
  [ $((SECONDS - started)) -lt 120 ] || { compose -p "$PROJECT" "${FILES[@]}" ps; fail "no write served 120 s after up"; }
  sleep 0.5
done
echo "first request served $((SECONDS - started)) s after 'compose up'"

echo "== round trip through nginx, and the blob in S3"
[ "$(get first)" = hello ] || fail "GET first did not return the bytes written"
for _ in $(seq 1 60); do
  stored=$(compose -p "$PROJECT" "${FILES[@]}" exec -T minio cat /data/blobs/first 2>/dev/null || true)
  [ "$stored" = hello ] && break
  sleep 0.5
done
[ "$stored" = hello ] || fail "the blob did not reach S3 within 30 s"

echo "== scale web=3: three distinct X-Served-By within 10 s"
started=$SECONDS
compose -p "$PROJECT" "${FILES[@]}" up -d --no-build --no-recreate --scale web=3 >/dev/null 2>&1
declare -A seen=()
while [ ${#seen[@]} -lt 3 ]; do
  [ $((SECONDS - started)) -le 10 ] ||
    fail "only ${#seen[@]} replicas answered within 10 s of the scale command: ${!seen[*]}"
  name=$(served_by)
  [ -n "$name" ] && seen[$name]=1
  sleep 0.1
done
echo "3 replicas answered $((SECONDS - started)) s after the scale command: ${!seen[*]}"

echo "== a web container killed while a client writes: no failed write"
failures=$(mktemp)
(
  for i in $(seq 1 400); do
    status=$(put "load/$i" "blob $i")
    [ "$status" = 201 ] || echo "load/$i $status" >>"$failures"
  done
) &
writer=$!
sleep 1
victim=$(compose -p "$PROJECT" "${FILES[@]}" ps -q web | head -n 1)
docker kill "$victim" >/dev/null
wait $writer
if [ -s "$failures" ]; then fail "$(wc -l <"$failures") of 400 writes failed: $(head -n 5 "$failures")"; fi
echo "400 writes, one replica killed (SIGKILL) among them: 0 failed"
rm -f "$failures"

echo "== down, up: every blob still readable"
compose -p "$PROJECT" "${FILES[@]}" down >/dev/null 2>&1
compose -p "$PROJECT" "${FILES[@]}" up -d --no-build >/dev/null 2>&1
started=$SECONDS
until [ "$(get first 2>/dev/null)" = hello ]; do
  [ $((SECONDS - started)) -lt 120 ] || fail "not serving 120 s after up"
  sleep 0.5
done
for i in $(seq 1 400); do
  [ "$(get "load/$i")" = "blob $i" ] || fail "load/$i lost across down/up"
done
echo "401 blobs readable after down and up"

echo "== down -v leaves nothing behind"
compose -p "$PROJECT" "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"; docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "left behind: $left"
echo "test-docker: compose passed"
