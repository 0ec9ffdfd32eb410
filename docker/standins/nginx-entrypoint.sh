#!/bin/bash
# What the official nginx image's entrypoint does with templates: every
# /etc/nginx/templates/*.template becomes /etc/nginx/conf.d/<name> with the environment's
# variables substituted (only those defined, so nginx's own $variables stay).
set -euo pipefail
templates=/etc/nginx/templates
out=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
if [ -d "$templates" ]; then
  defined=$(printf '${%s} ' $(env | cut -d= -f1))
  for template in "$templates"/*.template; do
    [ -e "$template" ] || continue
    name=$(basename "$template" .template)
    envsubst "$defined" <"$template" >"$out/$name"
  done
fi
exec "$@"
