#!/usr/bin/env bash
# The Swarm stack across three Docker engines, as users run it over several hosts: three
# engines in containers (docker/standins/dind.Dockerfile), each with its own address
# on a network of the test's own; the project's images loaded into each (docker save | docker
# load: no registry); one manager and two workers joined by token; the stack deployed as the
# README says (Redis and MinIO pinned to the manager by the data label: their volumes are that
# node's), `service scale web=3` spread over the three nodes; writes and reads through every
# node's nginx land on replicas on every node (the overlay network across engines); one worker
# node drained while a client writes: its tasks move, no acknowledged write lost. Everything
# it starts, it removes. Run by scripts/test-docker.sh after the images are built.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/docker/lib.sh

STACK=bptest
NET=bptest-nodes
SUBNET=10.213.9.0/24
NODES=(bptest-node1 bptest-node2 bptest-node3)
ADDR=(10.213.9.11 10.213.9.12 10.213.9.13)
DIND=blobproxy-test/dind:20.10
IMAGES=(blobproxy:latest redis:7 nginx:1.28 blobproxy-test/s3s-fs:0.14.1)
MANAGER=${NODES[0]}
on() { local node=$1; shift; docker exec -i "$node" docker "$@"; }
images_tar=$(mktemp -u /tmp/bptest-images.XXXXXX.tar)

cleanup() {
  for node in "${NODES[@]}"; do docker rm -f -v "$node" >/dev/null 2>&1 || true; done
  docker network rm "$NET" >/dev/null 2>&1 || true
  rm -f "$images_tar" "${WRITER_LOG:-}"
}
trap cleanup EXIT
cleanup
part_started=$SECONDS

# skip WHAT OUTPUT: the kernel (or the engine) refused something this part needs: say so with
# its exact words and stop here, having cleaned up.
skip() {
  echo "test-docker: SKIPPED the three-node swarm: $1. The exact error:"
  sed 's/^/    /' <<<"$2" | tail -n 15
  exit 0
}

echo "== three Docker engines in containers on $NET ($SUBNET)"
docker network create --subnet "$SUBNET" "$NET" >/dev/null
for i in 0 1 2; do
  # --privileged minus CAP_SYS_RESOURCE, which this machine's bounding set lacks (runc refuses
  # a privileged container here: "unable to apply caps: operation not permitted"); the image's
  # entrypoint makes /sys and the cgroups writable, the rest of what --privileged does.
  out=$(docker run -d --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
    --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    --name "${NODES[$i]}" --hostname "node$((i + 1))" \
    --network "$NET" --ip "${ADDR[$i]}" "$DIND" 2>&1) || skip "the container of ${NODES[$i]} did not start" "$out"
done
for node in "${NODES[@]}"; do
  started=$SECONDS
  until on "$node" info >/dev/null 2>&1; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$node")" != true ] || [ $((SECONDS - started)) -ge 60 ]; then
      skip "the engine in $node did not start" "$(docker logs "$node" 2>&1)"
    fi
    sleep 0.5
  done
done
echo "engines up: $(for n in "${NODES[@]}"; do on "$n" info -f '{{.Name}} ({{.Driver}})'; done | tr '\n' ' ')"

echo "== the project's images into each engine (docker save | docker load)"
started=$SECONDS
docker save -o "$images_tar" "${IMAGES[@]}"
for node in "${NODES[@]}"; do
  on "$node" load -q <"$images_tar" >/dev/null &
done
wait
echo "loaded $(du -m "$images_tar" | cut -f1) MB of images into 3 engines in $((SECONDS - started)) s"

echo "== one manager, two workers joined by token"
on "$MANAGER" swarm init --advertise-addr "${ADDR[0]}" >/dev/null
token=$(on "$MANAGER" swarm join-token -q worker)
for i in 1 2; do
  on "${NODES[$i]}" swarm join --token "$token" --advertise-addr "${ADDR[$i]}" "${ADDR[0]}:2377" >/dev/null
done
[ "$(on "$MANAGER" node ls -q | wc -l)" = 3 ] || fail "not 3 nodes in the swarm: $(on "$MANAGER" node ls)"
# The overlay network crosses engines through VXLAN: probe it from node1 to a container on
# node2 before deploying, so a kernel that refuses it is named as the reason.
on "$MANAGER" network create -d overlay --attachable bptest-probe >/dev/null
on "${NODES[1]}" run -d --name probe --network bptest-probe redis:7 redis-server --save "" >/dev/null
probe=$(on "$MANAGER" run --rm --network bptest-probe redis:7 bash -c \
  'for _ in $(seq 1 20); do redis-cli -h probe ping 2>&1 && exit 0; sleep 0.5; done; exit 1' 2>&1) ||
  skip "a container on node1 cannot reach one on node2 over the overlay network (VXLAN)" \
    "$probe
$(docker logs "${NODES[0]}" 2>&1 | grep -i -E 'vxlan|overlay' | tail -n 5)"
on "${NODES[1]}" rm -f probe >/dev/null
on "$MANAGER" network rm bptest-probe >/dev/null 2>&1 || true # gone with the engines anyway
echo "3 nodes; the overlay network crosses engines (node1 -> node2: $(tail -n 1 <<<"$probe"))"

echo "== stack deploy (the README's steps, the data on node1), scale web=3"
docker exec "$MANAGER" mkdir -p /stack
tar -c docker-compose-swarm.yml tests/docker/swarm.test.yml nginx | docker exec -i "$MANAGER" tar -x -C /stack
printf blobproxy | on "$MANAGER" secret create blobproxy_s3_access_key - >/dev/null
printf 'blobproxy-swarm-secret' | on "$MANAGER" secret create blobproxy_s3_secret_key - >/dev/null
on "$MANAGER" node update --label-add blobproxy.data=true node1 >/dev/null
started=$SECONDS
docker exec -w /stack "$MANAGER" docker stack deploy -c docker-compose-swarm.yml \
  -c tests/docker/swarm.test.yml "$STACK" >/dev/null
on "$MANAGER" service scale --detach "${STACK}_web=3" >/dev/null
converged() {
  ! on "$MANAGER" service ls --filter "label=com.docker.stack.namespace=$STACK" --format '{{.Replicas}}' |
    grep -qv '^\([0-9][0-9]*\)/\1$'
}
until converged; do
  [ $((SECONDS - started)) -lt 240 ] || { on "$MANAGER" service ls; on "$MANAGER" service ps --no-trunc "${STACK}_web"; fail "the three-node stack did not converge in 240 s"; }
  sleep 1
done
converged_after=$((SECONDS - started))
BASE=http://${ADDR[0]}:8000
until [ "$(put nodes/first hello 2>/dev/null)" = 201 ]; do
  [ $((SECONDS - started)) -lt 300 ] || {
    on "$MANAGER" service logs --tail 5 "${STACK}_web"
    on "$MANAGER" service logs --tail 5 "${STACK}_nginx"
    fail "no write was served through node1's nginx 300 s after deploy"
  }
  sleep 1
done
echo "converged $converged_after s after deploy; the first write served through node1's nginx $((SECONDS - started)) s after it"
web_nodes=$(on "$MANAGER" service ps -f desired-state=running --format '{{.Node}}' "${STACK}_web" | sort -u | tr '\n' ' ')
[ "$(wc -w <<<"$web_nodes")" = 3 ] || fail "web's 3 tasks are not on 3 nodes: $web_nodes"
echo "web tasks on: $web_nodes; redis on $(on "$MANAGER" service ps -f desired-state=running --format '{{.Node}}' "${STACK}_redis")"

echo "== writes and reads through every node's nginx reach replicas on every node"
# A task is in Docker's DNS once it runs; each nginx re-resolves every 5 s.
for address in "${ADDR[@]}"; do
  BASE=http://$address:8000 await_replicas 3 30 's/.*@//' >/dev/null
done
declare -A by_node=()
for i in $(seq 1 60); do
  BASE=http://${ADDR[$((i % 3))]}:8000
  read -r status replica < <(put_served_by "nodes/$i" "blob $i")
  [ "$status" = 201 ] || fail "nodes/$i through ${ADDR[$((i % 3))]}: $status"
  by_node[${replica##*@}]=$((${by_node[${replica##*@}]:-0} + 1))
done
for i in $(seq 1 60); do
  BASE=http://${ADDR[$(((i + 1) % 3))]}:8000
  [ "$(get "nodes/$i")" = "blob $i" ] || fail "nodes/$i not read back through ${ADDR[$(((i + 1) % 3))]}"
done
[ ${#by_node[@]} = 3 ] || fail "writes reached replicas on ${#by_node[@]} nodes only: $(declare -p by_node)"
echo "60 writes through the 3 nginx tasks, read back through another node's: replicas per node $(for n in "${!by_node[@]}"; do printf '%s=%s ' "$n" "${by_node[$n]}"; done)"
BASE=http://${ADDR[0]}:8000
await_in_s3 "blob 60" docker exec "$MANAGER" bash -c \
  "docker exec \$(docker ps -q --filter label=com.docker.swarm.service.name=${STACK}_minio) cat /data/blobs/nodes/60"

echo "== node3 drained (docker node update --availability drain) while a client writes"
# running_web: "TASK NODE" of each web task that is running (not merely wanted).
running_web() {
  on "$MANAGER" service ps -f desired-state=running --format '{{.Name}}.{{.ID}} {{.Node}} {{.CurrentState}}' "${STACK}_web" |
    awk '$3 == "Running" {print $1, $2}'
}
before=$(running_web)
start_writer nodes/drain
sleep 2
started=$SECONDS
on "$MANAGER" node update --availability drain node3 >/dev/null
until [ -z "$(on "$MANAGER" node ps -q -f desired-state=running node3)" ] &&
  [ "$(running_web | awk '$2 != "node3"' | wc -l)" = 3 ]; do
  [ $((SECONDS - started)) -lt 120 ] || { on "$MANAGER" service ps "${STACK}_web"; fail "node3's tasks did not move within 120 s"; }
  sleep 1
done
moved=$((SECONDS - started))
# nginx re-resolves every 5 s: the moved task must get requests.
new_task=$(comm -13 <(cut -d' ' -f1 <<<"$before" | sort) <(running_web | cut -d' ' -f1 | sort) | sed -n 1p)
await_served_by "$new_task" 60
followed=$((SECONDS - started))
sleep 2
stop_writer
web_nodes=$(running_web | cut -d' ' -f2 | sort | tr '\n' ' ')
echo "node3 drained: its tasks ran elsewhere $moved s later (web on: $web_nodes), the moved web task served through nginx $followed s after the drain; $(writes_report "$WRITER_LOG" '^[^ ]+ 503_replicas_unavailable ')"
readable_all "$WRITER_LOG"
declare -A seen=()
for _ in $(seq 1 30); do name=$(served_by); [ -n "$name" ] && seen[${name##*@}]=1; done
[ -z "${seen[node3]:-}" ] || fail "a replica on the drained node3 still answers"

echo "== stack removed, the engines and their network removed"
on "$MANAGER" stack rm "$STACK" >/dev/null
cleanup
trap - EXIT
left=$(docker ps -aq --filter "name=bptest-node"; docker network ls -q --filter "name=$NET")
[ -z "$left" ] || fail "left behind: $left"
echo "test-docker: three-node swarm passed ($((SECONDS - part_started)) s)"
