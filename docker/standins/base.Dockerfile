# The base of every stand-in: Debian bookworm from debootstrap, trusting what this machine
# trusts (its local CAs; here a TLS-inspecting egress proxy), so builds reach crates.io.
ARG ROOT=blobproxy-test/bookworm:debootstrap
FROM ${ROOT}
COPY ca/ /usr/local/share/ca-certificates/
