#!/usr/bin/env bash
# Installs what the tests and the local stack need, when missing. Debian packages:
# redis-server, dnsmasq (stands in for Docker's DNS in the topology test), docker-compose v1
# (validates the compose files without a Docker engine), chromium (loads /docs in a test),
# prometheus (its promtool tests the alert rules), and what building nginx needs. From
# crates.io: s3s-fs (a small S3-compatible server), cargo-nextest, and the source of nginx
# 1.28 (below). From PyPI, in a venv: schemathesis and moto, for the API fuzzer.
# Safe to run again: it only installs what is not there.
set -euo pipefail

S3S_FS_VERSION=0.14.1 # newer versions need a newer rustc than 1.95

# The project's nginx config keeps upstream connections alive while following DNS, which
# needs `server ... resolve` (nginx >= 1.27.3; the compose files run nginx:1.28). Debian 12
# ships 1.22, so the tests and the benchmark run nginx 1.28 built from source: the `nginx-src`
# crate (nginx's own vendored copy, published by the nginx team), checked against crates.io's
# checksum. Builds in ~15 s.
NGINX_SRC_CRATE=nginx-src-1.28.5+1.28.3
NGINX_SRC_SHA256=60c9192630560c017a18e1da5b4c5de9d78450923f17325752c6f0f7f3911c86
NGINX_DIR=${BLOBPROXY_NGINX_DIR:-$HOME/.cache/blobproxy/nginx-1.28.3}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_apt=()
command -v redis-server >/dev/null || missing_apt+=(redis-server)
[ -x "$NGINX_DIR/sbin/nginx" ] || {
  command -v gcc >/dev/null || missing_apt+=(gcc)
  command -v make >/dev/null || missing_apt+=(make)
  command -v curl >/dev/null || missing_apt+=(curl ca-certificates)
  [ -e /usr/include/pcre2.h ] || missing_apt+=(libpcre2-dev)
  [ -e /usr/include/zlib.h ] || missing_apt+=(zlib1g-dev)
}
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing_apt+=(dnsmasq-base)
command -v docker-compose >/dev/null || missing_apt+=(docker-compose)
[ -x /usr/bin/chromium ] || missing_apt+=(chromium)
command -v promtool >/dev/null || missing_apt+=(prometheus)
python3 -c "import ensurepip" 2>/dev/null || missing_apt+=(python3-venv)
if [ ${#missing_apt[@]} -gt 0 ]; then
  echo "installing ${missing_apt[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  # The packages start system services we do not use; the tests start their own servers.
  as_root service redis-server stop >/dev/null 2>&1 || true
  as_root service prometheus stop >/dev/null 2>&1 || true
fi

if [ ! -x "$NGINX_DIR/sbin/nginx" ]; then
  echo "building nginx 1.28 from $NGINX_SRC_CRATE (crates.io) into $NGINX_DIR"
  build=$(mktemp -d)
  curl -fsSL -o "$build/src.crate" "https://static.crates.io/crates/nginx-src/$NGINX_SRC_CRATE.crate"
  echo "$NGINX_SRC_SHA256  $build/src.crate" | sha256sum -c --quiet
  tar -xzf "$build/src.crate" -C "$build"
  (
    cd "$build/$NGINX_SRC_CRATE/nginx"
    ./auto/configure --prefix="$NGINX_DIR" --with-threads >"$build/configure.log" 2>&1 ||
      { cat "$build/configure.log"; exit 1; }
    make -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log"; exit 1; }
    make install >/dev/null
  )
  rm -rf "$build"
fi

if ! command -v s3s-fs >/dev/null && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "installing s3s-fs $S3S_FS_VERSION (cargo install, ~5-10 minutes once)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
fi

# The API fuzzer (schemathesis) and, for its run, moto: an S3 server that, like AWS, keeps
# both `a` and `a/b` (the fuzzer writes such pairs; s3s-fs stores keys as files and cannot).
PY_VENV=${BLOBPROXY_PY_VENV:-$HOME/.cache/blobproxy/venv}
PY_PACKAGES=(schemathesis==4.32.5 hypothesis==6.170.17 "moto[server]==5.2.5")
if [ ! -f "$PY_VENV/.installed" ] || [ "$(cat "$PY_VENV/.installed")" != "${PY_PACKAGES[*]}" ]; then
  echo "installing ${PY_PACKAGES[*]} into $PY_VENV (pip, ~1 minute once)"
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" >"$PY_VENV/.installed"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest (cargo install)"
  cargo install cargo-nextest --locked
fi
