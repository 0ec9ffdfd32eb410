# Stand-in for gcr.io/distroless/cc-debian12:nonroot (no registry here): glibc, libgcc,
# CA certificates and the `nonroot` user (uid 65532), as distroless has them.
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home nonroot
USER 65532:65532
