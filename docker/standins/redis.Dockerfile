# Stand-in for redis:7 (no registry here): Debian's redis-server 7.0, with the official
# image's entrypoint behaviour (protected mode off for a command-line server).
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
