#!/bin/bash
# Starts dockerd in this container. The container is run with every capability but
# CAP_SYS_RESOURCE (this machine's own bounding set lacks it, so `--privileged`, which asks for
# all, is refused), seccomp and AppArmor unconfined and /proc's system paths unmasked. What
# --privileged would also have done is done here: /sys and the cgroup hierarchies writable, so
# dockerd can make cgroups for its containers (they nest under this container's own).
set -euo pipefail
mount -o remount,rw /sys
for hierarchy in /sys/fs/cgroup/*; do
  mountpoint -q "$hierarchy" && mount -o remount,bind,rw "$hierarchy"
done
rm -f /var/run/docker.pid
# Storage: overlay2 on the /var/lib/docker volume, or DIND_STORAGE_DRIVER (vfs works wherever
# overlay mounts are refused).
exec dockerd --host unix:///var/run/docker.sock \
  --storage-driver "${DIND_STORAGE_DRIVER:-overlay2}" --log-driver json-file "$@"
