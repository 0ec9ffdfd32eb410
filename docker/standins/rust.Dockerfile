# Stand-in for rust:1.95-slim-bookworm (no registry, and no toolchain to fetch): the host's
# Rust 1.95 toolchain (rustc, cargo, the standard library; no docs), gcc for the crates that
# build C. Cargo fetches crates from crates.io at build time.
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/rust/bin:$PATH CARGO_HOME=/usr/local/cargo
RUN rustc --version && cargo --version
