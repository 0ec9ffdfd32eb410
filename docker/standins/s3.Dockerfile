# Stand-in for minio/minio (no registry here): s3s-fs, a small S3-compatible server, built
# on the host by scripts/install-deps.sh (cargo install) and copied in, and an `mc` that
# answers the compose files' health check (`mc ready local`).
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
COPY s3s-fs mc /usr/local/bin/
RUN mkdir -p /data
EXPOSE 9000
CMD ["s3s-fs", "--host", "0.0.0.0", "--port", "9000", "/data"]
