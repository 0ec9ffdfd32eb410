# Helpers shared by the parts of scripts/test-docker.sh (sourced, not run). Requests go to
# $BASE (nginx's published port), each with a 20 s limit.
BASE=${BASE:-http://127.0.0.1:8000}

fail() { echo "test-docker: FAIL: $*" >&2; exit 1; }
compose() {
  if docker compose version >/dev/null 2>&1; then docker compose "$@"; else docker-compose "$@"; fi
}
# put KEY DATA: a JSON write through nginx; prints the HTTP status.
put() {
  local data
  data=$(printf '%s' "$2" | base64 -w0)
  curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST "$BASE/put/" \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"extension\":\"txt\",\"data\":\"$data\"}"
}
# put_answer KEY DATA: like put, then the error code when the answer is not 201 ("503 replicas_unavailable").
put_answer() {
  local data body status
  data=$(printf '%s' "$2" | base64 -w0)
  body=$(mktemp)
  status=$(curl -s -o "$body" -w '%{http_code}' --max-time 20 -X POST "$BASE/put/" \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"extension\":\"txt\",\"data\":\"$data\"}")
  if [ "$status" = 201 ]; then echo 201; else echo "$status $(python3 -c 'import sys,json; print(json.load(open(sys.argv[1])).get("code",""))' "$body" 2>/dev/null)"; fi
  rm -f "$body"
}
# get KEY: the decoded bytes through nginx.
get() {
  curl -sf --max-time 20 "$BASE/get/$1" | python3 -c 'import sys,json,base64; print(base64.b64decode(json.load(sys.stdin)["data"]).decode(), end="")'
}
# put_served_by KEY DATA: a write through nginx; prints "STATUS REPLICA" (X-Served-By).
put_served_by() {
  local data
  data=$(printf '%s' "$2" | base64 -w0)
  curl -s -o /dev/null -D - --max-time 20 -X POST "$BASE/put/" \
    -H 'Content-Type: application/json' -d "{\"key\":\"$1\",\"extension\":\"txt\",\"data\":\"$data\"}" |
    tr -d '\r' | awk -F': ' '/^HTTP\//{split($0, s, " "); status=s[2]} tolower($1)=="x-served-by"{by=$2} END{print status, by}'
}
served_by() { curl -s -o /dev/null -D - --max-time 5 "$BASE/healthz" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-served-by"{print $2}'; }
# await_replicas N SECONDS [SED]: until N distinct X-Served-By answered through nginx (each
# name rewritten by the sed expression SED first, e.g. to its node), failing after SECONDS;
# prints the names.
await_replicas() {
  local want=$1 limit=$2 rewrite=${3:-} began=$SECONDS name
  local -A seen=()
  while [ ${#seen[@]} -lt "$want" ]; do
    [ $((SECONDS - began)) -lt "$limit" ] ||
      fail "only ${#seen[@]} of $want replicas answered through $BASE within $limit s: ${!seen[*]}"
    name=$(served_by)
    [ -n "$rewrite" ] && name=$(sed "$rewrite" <<<"$name")
    [ -n "$name" ] && seen[$name]=1
    sleep 0.1
  done
  echo "${!seen[*]}"
}
# await_served_by PREFIX SECONDS: until a request through nginx is served by a replica whose
# X-Served-By starts with PREFIX (a new task's name), failing after SECONDS.
await_served_by() {
  local began=$SECONDS
  until served_by | grep -q "^$1"; do
    [ $((SECONDS - began)) -lt "$2" ] || fail "nginx did not send to $1 within $2 s"
    sleep 0.1
  done
}
# await_in_s3 EXPECTED COMMAND...: until COMMAND (which prints an object's bytes off the S3
# server's disk) prints EXPECTED, for up to 30 s.
await_in_s3() {
  local want=$1 stored=
  shift
  for _ in $(seq 1 60); do
    stored=$("$@" 2>/dev/null || true)
    [ "$stored" = "$want" ] && return 0
    sleep 0.5
  done
  fail "the blob did not reach S3 within 30 s (the S3 server's disk has: ${stored:0:80})"
}
# status_field NAME: a number from GET /status through nginx.
status_field() { curl -sf --max-time 20 "$BASE/status" | python3 -c 'import sys,json; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# write_until STOPFILE PREFIX LOG: writes PREFIX/1, PREFIX/2, ... every 20 ms until STOPFILE
# exists. A write answered 503 replicas_unavailable is retried (up to 10 times, 1 s apart), as
# the API asks; LOG gets one line per write: "KEY FINAL-ANSWER TRIES".
write_until() {
  local stop=$1 prefix=$2 log=$3 i=0 status try
  while [ ! -e "$stop" ]; do
    i=$((i + 1))
    for try in $(seq 1 10); do
      status=$(put_answer "$prefix/$i" "blob $i")
      [ "$status" = "503 replicas_unavailable" ] || break
      sleep 1
    done
    echo "$prefix/$i ${status// /_} $try" >>"$log"
    sleep 0.02
  done
}
# start_writer PREFIX / stop_writer: write_until in the background, its log in $WRITER_LOG
# (removed by the next start_writer).
start_writer() {
  rm -f "${WRITER_LOG:-}" "${WRITER_STOP:-}"
  WRITER_LOG=$(mktemp) WRITER_STOP=$(mktemp -u)
  write_until "$WRITER_STOP" "$1" "$WRITER_LOG" &
  WRITER_PID=$!
}
stop_writer() {
  touch "$WRITER_STOP"
  wait "$WRITER_PID"
}
# writes_report LOG: "N writes, A acknowledged, R retried"; fails on any answer other than
# 201 (after retries) unless ALLOWED (a regex of answers) matches it.
writes_report() {
  local log=$1 allowed=${2:-^$}
  local total acked retried bad
  total=$(wc -l <"$log")
  acked=$(awk '$2 == "201"' "$log" | wc -l)
  retried=$(awk '$3 > 1' "$log" | wc -l)
  bad=$(awk '$2 != "201"' "$log" | grep -Ev "$allowed" || true)
  [ -z "$bad" ] || fail "$(wc -l <<<"$bad") of $total writes failed: $(head -n 5 <<<"$bad" | tr '\n' ';')"
  echo "$total writes, $acked acknowledged, $retried retried after 503 replicas_unavailable"
}
# readable_all LOG: every acknowledged write in LOG reads back its bytes (one kept-alive
# connection through nginx, so thousands of reads take seconds).
readable_all() {
  python3 - "$BASE" "$1" <<'PY' || fail "an acknowledged write is lost"
import base64, http.client, json, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
n = 0
for line in open(sys.argv[2]):
    key, status, _ = line.split()
    if status != "201":
        continue
    conn.request("GET", "/get/" + key)
    answer = conn.getresponse()
    body = answer.read()
    want = "blob " + key.rsplit("/", 1)[1]
    if answer.status != 200 or base64.b64decode(json.loads(body)["data"]).decode() != want:
        print(f"{key} was acknowledged and reads {answer.status} {body[:200]!r}", file=sys.stderr)
        sys.exit(1)
    n += 1
print(f"{n} acknowledged writes read back")
PY
}
