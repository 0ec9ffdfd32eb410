#!/usr/bin/env bash
# Runs the deployment for real on this machine's Docker engine, with no registry: builds the
# stand-in images (scripts/docker-images.sh) and the project's Dockerfile, then drives
# docker-compose.yml (with tests/docker/compose.test.yml swapping MinIO for s3s-fs):
# up, a round trip through nginx, the blob in S3, --scale web=3, a replica killed under
# writes, down/up keeping the blobs, down -v leaving nothing; then docker-compose.cluster.yml
# (a 3-master Redis Cluster): up, writes and reads, a master killed under writes, down -v; then
# the Swarm stack where the kernel can route to it. Skips (exit 0) with one line
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
# put_answer KEY DATA: like put, then the error code when the answer is not 201 ("503 replicas_unavailable").
put_answer() {
  local data body status
  data=$(printf '%s' "$2" | base64 -w0)
  body=$(mktemp)
  status=$(curl -s -o "$body" -w '%{http_code}' --max-time 20 -X POST "$BASE/put/" \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"extension\":\"txt\",\"data\":\"$data\"}")
  if [ "$status" = 201 ]; then echo 201; else echo "$status $(python3 -c 'import sys,json; print(json.load(open(sys.argv[1])).get("code",""))' "$body" 2>/dev/null)"; fi
  rm -f "$body"
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
# Compose returns once the new replica is started and the health-gated services are up.
echo "scale command took $((SECONDS - started)) s"
started=$SECONDS
declare -A seen=()
while [ ${#seen[@]} -lt 3 ]; do
  [ $((SECONDS - started)) -le 10 ] ||
    fail "only ${#seen[@]} replicas answered within 10 s of the scale command's end: ${!seen[*]}"
  name=$(served_by)
  [ -n "$name" ] && seen[$name]=1
  sleep 0.1
done
echo "3 replicas answered $((SECONDS - started)) s after the scale command returned: ${!seen[*]}"

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
echo "test-docker: compose passed"

# ---------------------------------------------------------------- Redis Cluster override
echo "== Redis Cluster override: compose up with 3 masters + 3 replicas"
CFILES=(-f docker-compose.yml -f docker-compose.cluster.yml -f tests/docker/compose.test.yml)
cluster_cleanup() { compose -p "$PROJECT" "${CFILES[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap 'cleanup; cluster_cleanup' EXIT
started=$SECONDS
compose -p "$PROJECT" "${CFILES[@]}" up -d --no-build >/dev/null 2>&1 || { compose -p "$PROJECT" "${CFILES[@]}" logs --tail 50; fail "cluster compose up"; }
until [ "$(put first hello 2>/dev/null)" = 201 ]; do
  [ $((SECONDS - started)) -lt 180 ] || { compose -p "$PROJECT" "${CFILES[@]}" ps; compose -p "$PROJECT" "${CFILES[@]}" logs --tail 20 redis-cluster-init web; fail "no write served 180 s after up"; }
  sleep 0.5
done
echo "first request served $((SECONDS - started)) s after 'compose up'"
nodes=$(compose -p "$PROJECT" "${CFILES[@]}" exec -T redis redis-cli cluster nodes | tr -d '\r')
[ "$(grep -c master <<<"$nodes")" = 3 ] && [ "$(grep -c slave <<<"$nodes")" = 3 ] || fail "not 3 masters + 3 replicas: $nodes"
for i in $(seq 1 100); do [ "$(put "cluster/$i" "blob $i")" = 201 ] || fail "cluster/$i not written"; done
[ "$(get cluster/7)" = "blob 7" ] || fail "GET cluster/7 did not return the bytes written"
for _ in $(seq 1 60); do
  stored=$(compose -p "$PROJECT" "${CFILES[@]}" exec -T minio cat /data/blobs/cluster/100 2>/dev/null || true)
  [ "$stored" = "blob 100" ] && break
  sleep 0.5
done
[ "$stored" = "blob 100" ] || fail "the blob did not reach S3 within 30 s"

echo "== a master SIGKILLed while a client writes: no write lost"
# The master that is not the first node (that one's health check gates the stack).
victim_ip=$(awk '/master/ && $2 !~ /^10\.213\.7\.11:/ { split($2, a, ":"); print a[1]; exit }' <<<"$nodes")
victim_service=redis-$(( ${victim_ip##*.} - 10 ))
failures=$(mktemp)
slowest=$(mktemp)
(
  worst=0
  for i in $(seq 1 200); do
    began=$(date +%s%N)
    for try in $(seq 1 30); do
      status=$(put_answer "failover/$i" "blob $i")
      [ "$status" = 201 ] && break
      sleep 1
    done
    [ "$status" = 201 ] || echo "failover/$i $status" >>"$failures"
    took=$(( ($(date +%s%N) - began) / 1000000 ))
    [ "$took" -le "$worst" ] || { worst=$took; echo "$worst ms (failover/$i, $try tries)" >"$slowest"; }
  done
) &
writer=$!
sleep 1
killed=$SECONDS
docker kill "$(compose -p "$PROJECT" "${CFILES[@]}" ps -q "$victim_service")" >/dev/null
wait $writer
if [ -s "$failures" ]; then fail "$(wc -l <"$failures") of 200 writes never acknowledged: $(head -n 5 "$failures")"; fi
for i in 1 50 100 150 200; do [ "$(get "failover/$i")" = "blob $i" ] || fail "failover/$i lost"; done
for i in $(seq 1 100); do [ "$(get "cluster/$i")" = "blob $i" ] || fail "cluster/$i lost after the kill"; done
echo "200 writes, master $victim_service ($victim_ip) SIGKILLed among them: all acknowledged ($((SECONDS - killed)) s from the kill to the last; the slowest took $(cat "$slowest")), earlier blobs readable"
rm -f "$failures" "$slowest"
cluster_cleanup
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "left behind: $left"
echo "test-docker: cluster passed"

# ---------------------------------------------------------------- Swarm
STACK=bptest
SWARM_FILES=(-c docker-compose-swarm.yml -c tests/docker/swarm.test.yml)
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != inactive ]; then
  echo "test-docker: this node is already in a swarm; skipping the Swarm part (it would leave it)"
  exit 0
fi
swarm_cleanup() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do
    [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  # The stack's volumes outlive it; its containers go away a little after `stack rm`.
  for _ in $(seq 1 30); do
    docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1 || true
    [ -z "$(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  docker secret rm blobproxy_s3_access_key blobproxy_s3_secret_key >/dev/null 2>&1 || true
  docker swarm leave --force >/dev/null 2>&1 || true
  # swarm init made this bridge; it stays after the node leaves.
  docker network rm docker_gwbridge >/dev/null 2>&1 || true
}
trap 'cleanup; cluster_cleanup; swarm_cleanup' EXIT

echo "== swarm init, secrets (as the README says), stack deploy"
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
printf blobproxy | docker secret create blobproxy_s3_access_key - >/dev/null
printf 'blobproxy-swarm-secret' | docker secret create blobproxy_s3_secret_key - >/dev/null
docker stack deploy "${SWARM_FILES[@]}" "$STACK" >/dev/null

# Swarm gives each service a virtual IP balanced by the kernel's IPVS; where the kernel has
# none, every connection to a service name fails. Probe it on the stack's own network.
until [ "$(docker service ls --filter "name=${STACK}_redis" --format '{{.Replicas}}')" = 1/1 ]; do sleep 1; done
network=$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK" | sed -n 1p)
probe=$(timeout 60 docker run --rm --network "$network" blobproxy-test/bookworm:base bash -c \
  '(exec 3<>/dev/tcp/tasks.redis/6379) 2>&1 && echo "task address: connected"; (exec 3<>/dev/tcp/redis/6379) 2>&1 && echo "service address: connected"' || true)
if ! grep -q "service address: connected" <<<"$probe"; then
  echo "test-docker: SKIPPED the rest of the Swarm part: this kernel cannot route to a Swarm"
  echo "  service's virtual IP (IPVS: /proc/net/ip_vs $( [ -e /proc/net/ip_vs ] && echo present || echo absent))."
  echo "  A container on the stack's overlay network connecting to redis:6379 got:"
  sed 's/^/    /' <<<"$probe"
  echo "  (Swarm init, secrets, the overlay network, stack deploy and the tasks ran; services"
  echo "  reach each other only through their virtual IPs, and the published port through the"
  echo "  IPVS routing mesh, so the stack cannot converge here.)"
  exit 0
fi

echo "== every service converges"
started=$SECONDS
until ! docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Replicas}}' | grep -qv '^\([0-9]*\)/\1$'; do
  [ $((SECONDS - started)) -lt 180 ] || { docker service ls; fail "the stack did not converge in 180 s"; }
  sleep 2
done
until [ "$(put swarm/first hello 2>/dev/null)" = 201 ]; do
  [ $((SECONDS - started)) -lt 240 ] || fail "no write served through the stack's nginx"
  sleep 1
done
echo "converged and serving $((SECONDS - started)) s after deploy"
[ "$(get swarm/first)" = hello ] || fail "swarm round trip"

echo "== docker service scale ${STACK}_web=3"
started=$SECONDS
docker service scale "${STACK}_web=3" >/dev/null 2>&1
declare -A swarm_seen=()
while [ ${#swarm_seen[@]} -lt 3 ]; do
  [ $((SECONDS - started)) -le 10 ] || fail "only ${#swarm_seen[@]} replicas within 10 s"
  name=$(served_by)
  [ -n "$name" ] && swarm_seen[$name]=1
  sleep 0.1
done
echo "3 replicas answered $((SECONDS - started)) s after the scale command"

echo "== rolling update (start-first) while a client writes"
failures=$(mktemp)
( for i in $(seq 1 300); do
    status=$(put "swarm/$i" "blob $i"); [ "$status" = 201 ] || echo "swarm/$i $status" >>"$failures"
  done ) &
writer=$!
docker service update --force "${STACK}_web" >/dev/null 2>&1
wait $writer
[ ! -s "$failures" ] || fail "$(wc -l <"$failures") writes failed during the rolling update"
echo "300 writes during a rolling update: 0 failed"
swarm_cleanup
echo "test-docker: swarm passed"
