# syntax=docker/dockerfile:1

# The base images are build arguments, so a registry mirror (or an air-gapped copy) can stand
# in: docker build --build-arg RUST_IMAGE=mirror.local/rust:1.95-slim-bookworm ...
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# --- build: dependencies first, in their own layer, so a source change rebuilds only our crate
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/deps/blobproxy* target/release/deps/libblobproxy* target/release/.fingerprint/blobproxy-*
COPY src ./src
RUN cargo build --release --locked \
 && install -D -m 0755 target/release/blobproxy /out/blobproxy

# --- runtime: glibc + CA certificates and nothing else; runs as the distroless `nonroot` user
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/blobproxy /usr/local/bin/blobproxy
USER nonroot:nonroot
ENV BLOBPROXY_BIND=0.0.0.0:8080
EXPOSE 8080
# The image has no shell, curl or wget: the binary probes its own /healthz.
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/blobproxy", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/blobproxy"]
CMD ["serve"]
