#!/usr/bin/env bash
# Installs what the tests and the local stack need, when missing. Debian packages:
# redis-server, nginx, dnsmasq (stands in for Docker's DNS in the topology test),
# docker-compose v1 (validates the compose files without a Docker engine), chromium (loads
# /docs in a test). From crates.io: s3s-fs (a small S3-compatible server), cargo-nextest.
# Safe to run again: it only installs what is not there.
set -euo pipefail

S3S_FS_VERSION=0.14.1 # newer versions need a newer rustc than 1.95

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_apt=()
command -v redis-server >/dev/null || missing_apt+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing_apt+=(nginx)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing_apt+=(dnsmasq-base)
command -v docker-compose >/dev/null || missing_apt+=(docker-compose)
[ -x /usr/bin/chromium ] || missing_apt+=(chromium)
if [ ${#missing_apt[@]} -gt 0 ]; then
  echo "installing ${missing_apt[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  # The packages start system services we do not use; the tests start their own servers.
  as_root service redis-server stop >/dev/null 2>&1 || true
  as_root service nginx stop >/dev/null 2>&1 || true
fi

if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "installing s3s-fs $S3S_FS_VERSION (cargo install, ~5-10 minutes once)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (cargo install)"
  cargo install cargo-nextest --locked
fi
