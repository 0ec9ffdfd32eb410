#!/usr/bin/env bash
# Runs the deployment for real on this machine's Docker engine, with no registry: builds the
# stand-in images (scripts/docker-images.sh) and the project's Dockerfile once, then each part
# in tests/docker/ (each removes everything it starts):
#   compose      docker-compose.yml: up, round trip, scale, a replica killed, down/up, down -v
#   cluster      docker-compose.cluster.yml: a 3-master Redis Cluster, a master killed
#   swarm        docker-compose-swarm.yml on this engine as one node: deploy, scale, rolling
#                update, a web task and the Redis task killed, worker=2, leave
#   swarm-nodes  the same stack over three engines in containers: spread, node drain
# Usage: scripts/test-docker.sh [PART...] (default: all, in that order). Skips (exit 0) with
# one line when no Docker engine answers.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export DOCKER_BUILDKIT=0

if ! docker info >/dev/null 2>&1; then
  echo "test-docker: no Docker engine answers (docker info failed); skipping the deployment test"
  exit 0
fi
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(compose cluster swarm swarm-nodes)
for part in "${parts[@]}"; do
  [ -f "tests/docker/$part.sh" ] || { echo "test-docker: no part named $part (tests/docker/$part.sh)" >&2; exit 2; }
done

scripts/docker-images.sh
started=$SECONDS
docker build -q --network host -t blobproxy:latest . >/dev/null
echo "built blobproxy:latest in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' blobproxy:latest | awk '{printf "%.1f MB", $1/1e6}'))"

for part in "${parts[@]}"; do
  tests/docker/"$part".sh
done
