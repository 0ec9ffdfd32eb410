#!/usr/bin/env bash
# The Swarm stack on this engine as one node, the way the README deploys it: swarm init, the
# secrets, the data label, stack deploy (tests/docker/swarm.test.yml puts s3s-fs in MinIO's
# place), then: every service converges, a round trip through nginx and the blob in S3;
# `service scale web=3` answered by three replicas; a rolling update under writes (none
# fails); a web task's container killed under writes (Swarm replaces it, nginx follows, only
# retried 503s, nothing lost); `service scale worker=2` drains a backlog with both; the Redis
# task killed (Swarm restarts it on its volume: nothing lost, replicas answer again on their
# own); the S3 task killed (writes go on, the drain follows the new task); stack removed and
# the swarm left with nothing behind. Run by scripts/test-docker.sh
# after the images are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/docker/lib.sh

STACK=bptest
SWARM_FILES=(-c docker-compose-swarm.yml -c tests/docker/swarm.test.yml)
if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != inactive ]; then
  echo "test-docker: this node is already in a swarm; skipping the Swarm part (it would leave it)"
  exit 0
fi

# stack_cleanup: removes the stack, its volumes and the secrets.
stack_cleanup() {
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] &&
      [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")" ] && break
    sleep 1
  done
  # The stack's volumes outlive it (and its containers go a little after `stack rm`).
  docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null 2>&1 || true
  docker secret rm blobproxy_s3_access_key blobproxy_s3_secret_key >/dev/null 2>&1 || true
}
swarm_cleanup() {
  rm -f "${WRITER_LOG:-}"
  stack_cleanup
  docker swarm leave --force >/dev/null 2>&1 || true
  # swarm init made this bridge; it stays after the node leaves.
  docker network rm docker_gwbridge >/dev/null 2>&1 || true
}
trap swarm_cleanup EXIT

# converged: every service of the stack runs all its tasks ("n/n"; a global one counts nodes).
converged() {
  ! docker service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Replicas}}' |
    grep -qv '^\([0-9][0-9]*\)/\1$'
}
# running_web: the web tasks that run ("<service>.<slot>.<task id prefix>", as X-Served-By starts).
running_web() {
  docker service ps -f desired-state=running --format '{{.Name}}.{{.ID}} {{.CurrentState}}' "${STACK}_web" |
    awk '$2 == "Running" {print $1}'
}
# container_of SERVICE: the running container of the service's (first) task on this engine.
container_of() { docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_$1" | sed -n 1p; }

echo "== swarm init, secrets and data label (as the README says), stack deploy"
part_started=$SECONDS
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
printf blobproxy | docker secret create blobproxy_s3_access_key - >/dev/null
printf 'blobproxy-swarm-secret' | docker secret create blobproxy_s3_secret_key - >/dev/null
docker node update --label-add blobproxy.data=true "$(docker node ls -q)" >/dev/null
started=$SECONDS
docker stack deploy "${SWARM_FILES[@]}" "$STACK" >/dev/null

echo "== every service converges; a round trip through nginx; the blob in S3"
until converged; do
  [ $((SECONDS - started)) -lt 180 ] || { docker service ls; docker service ps --no-trunc "${STACK}_web"; fail "the stack did not converge in 180 s"; }
  sleep 1
done
converged_after=$((SECONDS - started))
until [ "$(put swarm/first hello 2>/dev/null)" = 201 ]; do
  [ $((SECONDS - started)) -lt 240 ] || { docker service logs --tail 20 "${STACK}_web"; fail "no write served through the stack's nginx"; }
  sleep 0.5
done
echo "every service converged $converged_after s after deploy; the first write served $((SECONDS - started)) s after deploy"
[ "$(get swarm/first)" = hello ] || fail "GET swarm/first did not return the bytes written"
await_in_s3 hello docker exec "$(container_of minio)" cat /data/blobs/swarm/first

echo "== docker service scale ${STACK}_web=3: three distinct X-Served-By within 10 s"
started=$SECONDS
timeout 120 docker service scale "${STACK}_web=3" >/dev/null || fail "scale web=3 did not converge within 120 s"
scaled=$((SECONDS - started))
seen=$(await_replicas 3 10)
echo "scale took $scaled s (the command waits for the new task to be healthy); 3 replicas answered $((SECONDS - started)) s after it began: $seen"

echo "== rolling update (docker service update --force, start-first) while a client writes"
start_writer swarm/roll
started=$SECONDS
timeout 300 docker service update --force "${STACK}_web" >/dev/null || fail "the rolling update did not finish within 300 s"
stop_writer
echo "the update took $((SECONDS - started)) s; $(writes_report "$WRITER_LOG")"
[ "$(awk '$3 > 1' "$WRITER_LOG" | wc -l)" = 0 ] || fail "a write needed a retry during the rolling update"
readable_all "$WRITER_LOG" >/dev/null

echo "== a web task's container killed (docker kill) while a client writes"
# The request the killed replica was answering gets nginx's 503 replicas_unavailable (nginx
# cannot resend a POST it already sent); the client retries it. Anything else fails.
start_writer swarm/kill
sleep 2
before=$(running_web)
victim=$(container_of web)
victim_task=$(docker inspect -f '{{index .Config.Labels "com.docker.swarm.task.name"}}' "$victim")
killed=$SECONDS
docker kill "$victim" >/dev/null
# Swarm starts a new task in the dead one's place; nginx follows it once it runs.
until new_task=$(comm -13 <(sort <<<"$before") <(running_web | sort) | sed -n 1p) && [ -n "$new_task" ]; do
  [ $((SECONDS - killed)) -lt 90 ] || fail "Swarm did not replace the killed web task within 90 s"
  sleep 0.5
done
replaced=$((SECONDS - killed))
await_served_by "$new_task" 60
followed=$((SECONDS - killed))
sleep 2
stop_writer
echo "killed $victim_task: its replacement ran $replaced s later and answered through nginx $followed s after the kill; $(writes_report "$WRITER_LOG" '^[^ ]+ 503_replicas_unavailable ')"
readable_all "$WRITER_LOG"

echo "== docker service scale ${STACK}_worker=2 drains a backlog with both"
timeout 120 docker service scale "${STACK}_worker=0" >/dev/null || fail "scale worker=0 did not converge"
for i in $(seq 1 600); do [ "$(put "swarm/backlog/$i" "blob $i")" = 201 ] || fail "swarm/backlog/$i not written"; done
dirty=$(status_field dirty)
[ "$dirty" -ge 600 ] || fail "600 writes with no worker left $dirty dirty"
started=$SECONDS
timeout 120 docker service scale "${STACK}_worker=2" >/dev/null || fail "scale worker=2 did not converge"
until [ "$(status_field dirty)" = 0 ]; do
  [ $((SECONDS - started)) -lt 120 ] || fail "the backlog did not drain in 120 s ($(status_field dirty) dirty)"
  sleep 0.5
done
drained_in=$((SECONDS - started))
# Each worker logs a "drained" line per key at debug level (swarm.test.yml turns it on).
shares=$(for c in $(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_worker"); do
  docker logs "$c" 2>&1 | grep -c '"message":"drained"' || true
done | sort -n | tr '\n' ' ')
read -r -a counts <<<"$shares"
[ ${#counts[@]} = 2 ] && [ "${counts[0]}" -gt 0 ] || fail "the backlog was not drained by both workers: keys per worker $shares"
for i in 1 300 600; do
  stored=$(docker exec "$(container_of minio)" cat "/data/blobs/swarm/backlog/$i" 2>/dev/null || true)
  [ "$stored" = "blob $i" ] || fail "swarm/backlog/$i not in S3 after the drain"
done
echo "$dirty dirty blobs drained $drained_in s after the scale command began; keys per worker: $shares"

# kill_and_await_restart SERVICE: SIGKILLs the service's container and waits for Swarm's new
# one; sets KILLED (when) and RESTARTED (seconds after it).
kill_and_await_restart() {
  local before
  before=$(container_of "$1")
  KILLED=$SECONDS
  docker kill "$before" >/dev/null
  until [ -n "$(container_of "$1")" ] && [ "$(container_of "$1")" != "$before" ]; do
    [ $((SECONDS - KILLED)) -lt 90 ] || fail "Swarm did not restart the $1 task within 90 s"
    sleep 0.5
  done
  RESTARTED=$((SECONDS - KILLED))
}

echo "== the Redis task killed while a client writes: Swarm restarts it on its volume"
start_writer swarm/redis
sleep 2
kill_and_await_restart redis
until [ "$(put swarm/redis/after back)" = 201 ]; do
  [ $((SECONDS - KILLED)) -lt 120 ] || fail "the replicas did not answer writes again within 120 s of the Redis kill"
  sleep 0.2
done
answering=$((SECONDS - KILLED))
sleep 2
stop_writer
# While Redis is away a write is refused with 503 redis_unavailable (nothing acknowledged).
echo "Redis's new task started $RESTARTED s after the kill; writes acknowledged again $answering s after the kill; $(writes_report "$WRITER_LOG" '^[^ ]+ 503_(redis_unavailable|replicas_unavailable) ')"
readable_all "$WRITER_LOG"
for key in swarm/first swarm/backlog/1 swarm/backlog/600; do
  [ -n "$(get "$key")" ] || fail "$key unreadable after the Redis restart"
done

echo "== the S3 task killed while a client writes: writes go on, the drain follows the new task"
start_writer swarm/s3
sleep 1
kill_and_await_restart minio
sleep 3
stop_writer
report=$(writes_report "$WRITER_LOG")
until [ "$(status_field dirty)" = 0 ]; do
  [ $((SECONDS - KILLED)) -lt 120 ] || fail "the backlog did not drain into the new S3 task within 120 s of the kill"
  sleep 0.5
done
last=$(awk '$2 == "201" {k=$1} END {print k}' "$WRITER_LOG")
stored=$(docker exec "$(container_of minio)" cat "/data/blobs/$last" 2>/dev/null || true)
[ "$stored" = "blob ${last##*/}" ] || fail "$last is not in the new S3 task after the drain"
echo "S3's new task started $RESTARTED s after the kill; $report (every one answered 201: writes wait in Redis); nothing dirty $((SECONDS - KILLED)) s after the kill"

echo "== stack removed, node leaves the swarm: nothing left behind"
swarm_cleanup
trap - EXIT
left=$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK"; docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK"; docker network ls -q --filter "label=com.docker.stack.namespace=$STACK"; docker network ls -q --filter name=docker_gwbridge; docker network ls -q --filter name=ingress)
[ -z "$left" ] || fail "left behind: $left"
[ "$(docker info -f '{{.Swarm.LocalNodeState}}')" = inactive ] || fail "the node is still in a swarm"
echo "test-docker: swarm passed ($((SECONDS - part_started)) s)"
