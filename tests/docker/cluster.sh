#!/usr/bin/env bash
# docker-compose.cluster.yml on top of docker-compose.yml (a 3-master Redis Cluster): up,
# writes and reads, a master killed under writes, down -v leaving nothing. Run by
# scripts/test-docker.sh after the images are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/docker/lib.sh

PROJECT=blobproxy-test
echo "== Redis Cluster override: compose up with 3 masters + 3 replicas"
CFILES=(-f docker-compose.yml -f docker-compose.cluster.yml -f tests/docker/compose.test.yml)
cluster_cleanup() { compose -p "$PROJECT" "${CFILES[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cluster_cleanup EXIT
cluster_cleanup
part_started=$SECONDS
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
await_in_s3 "blob 100" compose -p "$PROJECT" "${CFILES[@]}" exec -T minio cat /data/blobs/cluster/100

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
echo "test-docker: cluster passed ($((SECONDS - part_started)) s)"
