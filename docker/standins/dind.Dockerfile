# A Docker engine in a container: one node of the three-node swarm in tests/docker/swarm-nodes.sh.
# Debian's docker.io (the engine this machine runs), run (nearly) privileged with /var/lib/docker on a
# volume of its own. No registry: the test loads the project's images into it (docker load).
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      docker.io iptables iproute2 procps ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY dind-entrypoint.sh /usr/local/bin/dind-entrypoint.sh
VOLUME /var/lib/docker
ENTRYPOINT ["/usr/local/bin/dind-entrypoint.sh"]
