# Stand-in for nginx:1.28 (no registry here): nginx 1.28.3 built from the nginx-src crate, as
# scripts/install-deps.sh builds it, with the official image's entrypoint behaviour that
# nginx/ relies on: /etc/nginx/templates/*.template rendered by envsubst into conf.d.
ARG BASE=blobproxy-test/bookworm:base
FROM ${BASE}
# nginx's own vendored source, from the nginx-src crate (fetched and checked by the script).
COPY nginx-src.crate /tmp/src.crate
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      gcc make libc6-dev libpcre2-dev zlib1g-dev gettext-base libpcre2-8-0 zlib1g \
 && mkdir /tmp/build && tar -xzf /tmp/src.crate -C /tmp/build \
 && cd /tmp/build/nginx-src-*/nginx \
 && ./auto/configure --prefix=/etc/nginx --sbin-path=/usr/sbin/nginx \
      --conf-path=/etc/nginx/nginx.conf --pid-path=/var/run/nginx.pid \
      --error-log-path=/var/log/nginx/error.log --http-log-path=/var/log/nginx/access.log \
      --with-threads >/dev/null \
 && make -j"$(nproc)" >/dev/null && make install >/dev/null \
 && cd / && rm -rf /tmp/build /tmp/src.crate \
 && apt-get purge -y -qq gcc make libc6-dev libpcre2-dev zlib1g-dev >/dev/null && apt-get autoremove -y -qq >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/nginx/conf.d /var/cache/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && useradd --system --no-create-home --shell /usr/sbin/nologin nginx
COPY nginx-entrypoint.sh /docker-entrypoint.sh
ENTRYPOINT ["/docker-entrypoint.sh"]
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
