#!/usr/bin/env bash
# The floor under issue 15's target 1: Redis CPU per 1 KiB write for a plain SET (one per request,
# 64 clients: the benchmark's method) and for Lua batches of 32 writes doing what any write-back
# cache with a dirty index and a key-ordered listing index must: a record, a time-scored
# dirty set, a key-ordered set. Starts its own redis-server (AOF everysec) on port 29661.
# Usage: bench/redis_floor.sh
set -e
work=$(mktemp -d); cd "$work"; trap 'redis-cli -p 29661 shutdown nosave >/dev/null 2>&1; rm -rf "$work"' EXIT
redis-server --port 29661 --save '' --appendonly yes --appendfsync everysec --dir "$work" --daemonize yes --pidfile "$work/r.pid" >/dev/null
sleep 1
PID=$(cat "$work/r.pid")
VAL=$(head -c 768 /dev/urandom | base64 -w0 | head -c 1024)
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
N=20000; n=0
per() { python3 -c "print(round(($2-$1)*0.01/($N*32)*1e6,2))"; }
b=$(cpu); redis-benchmark -p 29661 -n $((N*32)) -c 64 -r 1000000 -q SET "s:__rand_int__" "$VAL" >/dev/null; a=$(cpu); echo "SET, one per request, 64 clients: $(per $b $a) us"
run() { n=$((n+1)); b=$(cpu); redis-benchmark -p 29661 -n $N -c 16 -r 1000000 -q EVAL "for i = 1, 32 do local k = KEYS[1] .. '/' .. i $2 end return 1" 1 "r$n:__rand_int__" "$VAL" >/dev/null; a=$(cpu); echo "$1: $(per $b $a) us"; }
run "Lua x32: SET" "redis.call('SET', k, ARGV[1])"
run "Lua x32: HSET of 6 fields" "redis.call('HSET', k, 'k', 'blob', 'd', ARGV[1], 'e', 'bin', 'c', 'x/y', 'v', '1', 's', 'dirty')"
run "Lua x32: HSET + ZADD (time-scored dirty set)" "redis.call('HSET', k, 'k', 'blob', 'd', ARGV[1], 'e', 'bin', 'c', 'x/y', 'v', '1', 's', 'dirty') redis.call('ZADD', 'z$n', 'NX', 1, k)"
run "Lua x32: HSET + 2 ZADD (+ key-ordered set)" "redis.call('HSET', k, 'k', 'blob', 'd', ARGV[1], 'e', 'bin', 'c', 'x/y', 'v', '1', 's', 'dirty') redis.call('ZADD', 'z$n', 'NX', 1, k) redis.call('ZADD', 'y$n', 0, k)"
