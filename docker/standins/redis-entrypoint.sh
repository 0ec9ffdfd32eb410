#!/bin/bash
# What the official redis image's entrypoint does: a redis-server started from the command
# line (no config file) gets --protected-mode no, so other containers may connect (protected
# mode refuses every non-loopback client when no password is set).
set -e
if [ "${1:-}" = "redis-server" ] && [[ "${2:-}" != *.conf ]] && [[ " $* " != *" --protected-mode "* ]]; then
  set -- "$@" --protected-mode no
fi
exec "$@"
