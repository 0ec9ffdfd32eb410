#!/usr/bin/env bash
# docker-compose.yml on this engine (tests/docker/compose.test.yml swaps MinIO for s3s-fs): up,
# a round trip through nginx, the blob in S3, --scale web=3, a replica killed under writes,
# down/up keeping the blobs, down -v leaving nothing. Run by scripts/test-docker.sh after the
# images are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/docker/lib.sh

PROJECT=blobproxy-test
FILES=(-f docker-compose.yml -f tests/docker/compose.test.yml)
cleanup() { compose -p "$PROJECT" "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
part_started=$SECONDS

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
await_in_s3 hello compose -p "$PROJECT" "${FILES[@]}" exec -T minio cat /data/blobs/first

echo "== scale web=3: three distinct X-Served-By within 10 s"
started=$SECONDS
compose -p "$PROJECT" "${FILES[@]}" up -d --no-build --no-recreate --scale web=3 >/dev/null 2>&1
# Compose returns once the new replica is started and the health-gated services are up.
echo "scale command took $((SECONDS - started)) s"
started=$SECONDS
seen=$(await_replicas 3 10)
echo "3 replicas answered $((SECONDS - started)) s after the scale command returned: $seen"

echo "== a web container killed while a client writes: no write lost"
# SIGKILL takes the request the replica was answering with it: nginx cannot pass a POST whose
# body it already sent to another replica (it may have been applied), so it answers 503
# replicas_unavailable with Retry-After, and the client retries, as the API asks. Any other
# answer fails the test, as does a write that retries do not save, or more than 2 retries (the
# one request in flight at the kill, and at most one more sent on a kept-alive connection to
# the dead replica before nginx saw it close).
failures=$(mktemp)
retries=$(mktemp)
(
  for i in $(seq 1 400); do
    for try in 1 2 3; do
      status=$(put_answer "load/$i" "blob $i")
      case "$status" in
        201) break ;;
        "503 replicas_unavailable") echo "load/$i" >>"$retries"; sleep 1 ;;
        *) echo "load/$i $status" >>"$failures"; break ;;
      esac
    done
    [ "$status" != "503 replicas_unavailable" ] || echo "load/$i still 503 after 3 tries" >>"$failures"
  done
) &
writer=$!
sleep 1
victim=$(compose -p "$PROJECT" "${FILES[@]}" ps -q web | sed -n 1p)
docker kill "$victim" >/dev/null
wait $writer
if [ -s "$failures" ]; then fail "$(wc -l <"$failures") of 400 writes failed: $(head -n 5 "$failures")"; fi
retried=$(wc -l <"$retries")
[ "$retried" -le 2 ] || fail "$retried writes needed a retry (at most 2 can be in flight on the killed replica): $(head -n 5 "$retries")"
echo "400 writes, one replica killed (SIGKILL) among them: all acknowledged, $retried retried after 503 replicas_unavailable"
rm -f "$failures" "$retries"

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
echo "test-docker: compose passed ($((SECONDS - part_started)) s)"
