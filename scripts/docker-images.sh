#!/usr/bin/env bash
# Builds, without any registry, the images the Dockerfile and the compose files name: a Debian
# bookworm base from debootstrap (the mirror apt uses), then stand-ins tagged with the public
# names (redis:7, nginx:1.28, rust:1.95-slim-bookworm, gcr.io/distroless/cc-debian12:nonroot),
# blobproxy-test/s3s-fs in MinIO's place, and blobproxy-test/dind (a Docker engine, for the
# three-node swarm test). Each image carries a label with the hash of its inputs and is rebuilt
# only when they change.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export DOCKER_BUILDKIT=0 # the legacy builder: BuildKit would fetch its frontend from a registry
ROOT=blobproxy-test/bookworm:debootstrap
BASE=blobproxy-test/bookworm:base
MIRROR=${BLOBPROXY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STANDINS=docker/standins

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

label_of() { docker image inspect -f '{{index .Config.Labels "blobproxy.inputs"}}' "$1" 2>/dev/null || true; }

# build TAG HASH DOCKERFILE CONTEXT: builds unless TAG already holds these inputs.
build() {
  local tag=$1 hash=$2 dockerfile=$3 context=$4
  if [ "$(label_of "$tag")" = "$hash" ]; then
    echo "image $tag is up to date"
    return
  fi
  echo "building $tag"
  local started=$SECONDS
  docker build -q --network host --label "blobproxy.inputs=$hash" --build-arg "BASE=$BASE" \
    -f "$dockerfile" -t "$tag" "$context" >/dev/null
  echo "built $tag in $((SECONDS - started)) s"
}

if ! docker image inspect "$ROOT" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  echo "bootstrapping Debian bookworm from $MIRROR"
  root=$(mktemp -d)
  as_root /usr/sbin/debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  as_root tar -C "$root" -c . | docker import - "$ROOT" >/dev/null
  as_root rm -rf "$root"
fi

inputs() { cat "$@" | sha256sum | cut -c1-16; }
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

mkdir -p "$context/ca"
cp /usr/local/share/ca-certificates/*.crt "$context/ca/" 2>/dev/null || true
root_id=$(docker image inspect -f '{{.Id}}' "$ROOT")
build "$BASE" "$( (echo "$root_id"; cat "$context"/ca/* "$STANDINS/base.Dockerfile" 2>/dev/null) | inputs -)" \
  "$STANDINS/base.Dockerfile" "$context"
base_id=$(docker image inspect -f '{{.Id}}' "$BASE")

build redis:7 "$(echo "$base_id" | inputs - "$STANDINS/redis.Dockerfile" "$STANDINS/redis-entrypoint.sh")" \
  "$STANDINS/redis.Dockerfile" "$STANDINS"
# nginx's source, fetched here (the host's curl) and checked against crates.io's checksum.
NGINX_SRC_CRATE=nginx-src-1.28.5+1.28.3
NGINX_SRC_SHA256=60c9192630560c017a18e1da5b4c5de9d78450923f17325752c6f0f7f3911c86
cache=${XDG_CACHE_HOME:-$HOME/.cache}/blobproxy
mkdir -p "$cache"
if [ ! -f "$cache/$NGINX_SRC_CRATE.crate" ]; then
  curl -fsSL -o "$cache/$NGINX_SRC_CRATE.crate.part" \
    "https://static.crates.io/crates/nginx-src/$NGINX_SRC_CRATE.crate"
  echo "$NGINX_SRC_SHA256  $cache/$NGINX_SRC_CRATE.crate.part" | sha256sum -c --quiet
  mv "$cache/$NGINX_SRC_CRATE.crate.part" "$cache/$NGINX_SRC_CRATE.crate"
fi
cp "$cache/$NGINX_SRC_CRATE.crate" "$context/nginx-src.crate"
cp "$STANDINS/nginx-entrypoint.sh" "$context/"
build nginx:1.28 "$(echo "$base_id" | inputs - "$STANDINS/nginx.Dockerfile" "$STANDINS/nginx-entrypoint.sh" "$context/nginx-src.crate")" \
  "$STANDINS/nginx.Dockerfile" "$context"
build gcr.io/distroless/cc-debian12:nonroot "$(echo "$base_id" | inputs - "$STANDINS/runtime.Dockerfile")" \
  "$STANDINS/runtime.Dockerfile" "$STANDINS"

s3s=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
cp "$s3s" "$context/s3s-fs"
cp "$STANDINS/mc" "$context/mc"
build blobproxy-test/s3s-fs:0.14.1 "$(echo "$base_id" | inputs - "$STANDINS/s3.Dockerfile" "$context/s3s-fs" "$context/mc")" \
  "$STANDINS/s3.Dockerfile" "$context"

sysroot=$(rustc --print sysroot)
rust_hash=$( (echo "$base_id"; rustc -vV; cat "$STANDINS/rust.Dockerfile") | sha256sum | cut -c1-16)
if [ "$(label_of rust:1.95-slim-bookworm)" != "$rust_hash" ]; then
  mkdir -p "$context/toolchain"
  cp -a "$sysroot/bin" "$sysroot/lib" "$context/toolchain/"
  rm -rf "$context/toolchain/lib/rustlib/src"
fi
build rust:1.95-slim-bookworm "$rust_hash" "$STANDINS/rust.Dockerfile" "$context"

# A Docker engine in a container, for the three-node swarm (tests/docker/swarm-nodes.sh).
build blobproxy-test/dind:20.10 "$(echo "$base_id" | inputs - "$STANDINS/dind.Dockerfile" "$STANDINS/dind-entrypoint.sh")" \
  "$STANDINS/dind.Dockerfile" "$STANDINS"
