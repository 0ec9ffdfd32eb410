#!/usr/bin/env python3
"""blobproxy's benchmark: the local topology against its ceilings and its alternative, in one run.

Starts redis-server, s3s-fs, dnsmasq (DNS for the replicas), two `blobproxy serve` replicas,
one `blobproxy worker`, two bare replicas (bench/bare_replica.rs: the least a replica on this
stack can do), and four nginx: the project's config in front of the replicas, the same config
in front of the bare replicas, in front of a static-file upstream (the ideal proxy: nothing
behind nginx costs less), and that static server itself. Loads them with wrk, and prints one table; writes
bench/results.json and bench/results.png. Everything listens on 127.0.0.0/8 only.

Run it through bench/run.sh, which installs what it needs and builds the release binary.
"""

import concurrent.futures
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "blobproxy"
DELAY_PROXY = ROOT / "target" / "release" / "examples" / "delay_proxy"
BARE_COPY = ROOT / "target" / "release" / "examples" / "bare_copy"
BARE_REPLICA = ROOT / "target" / "release" / "examples" / "bare_replica"
# The nginx scripts/install-deps.sh builds (the config needs >= 1.27.3; Debian 12 has 1.22).
NGINX = Path(os.environ.get("BLOBPROXY_NGINX_DIR", Path.home() / ".cache/blobproxy/nginx-1.28.3")) / "sbin/nginx"
LUA = ROOT / "bench" / "lua" / "requests.lua"
OUT = ROOT / "bench"
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
SIZES = [("1KiB", 1024), ("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)]
CONNECTIONS = {1024: 32, 64 * 1024: 32, 1024 * 1024: 16}
ACCESS, SECRET, BUCKET = "bench", "bench-secret-key", "blobs"
WORKER_CONCURRENCY = 512  # the default (BLOBPROXY_WORKER_CONCURRENCY)
S3_REPEATS = 3
# The Redis settings the compose files ship (see docker-compose.yml).
REDIS_FLAGS = ["--appendonly", "yes", "--appendfsync", "everysec", "--rdbcompression", "no",
               "--maxmemory", "4gb", "--maxmemory-policy", "volatile-lru"]

procs = []
work = Path(tempfile.mkdtemp(prefix="blobproxy-bench-"))
work.chmod(0o755)  # nginx workers run as an unprivileged user and must read the static files


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {host}:{port}")


def spawn(name, cmd, env=None):
    logf = open(work / f"{name}.log", "w")
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    procs.append(p)
    return p


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)


def render(template, out, values):
    text = Path(template).read_text()
    for k, v in values.items():
        text = text.replace("${" + k + "}", str(v))
    assert "${" not in text, f"unrendered variable in {template}"
    Path(out).write_text(text)


def nginx(name, template_vars, static=False):
    """An nginx running the project's config (rendered as the nginx image renders it)."""
    d = work / name
    (d / "conf.d").mkdir(parents=True)
    if static:
        render(ROOT / "bench" / "static.conf", d / "nginx.conf", template_vars)
    else:
        render(ROOT / "nginx" / "templates" / "blobproxy.conf.template", d / "conf.d" / "blobproxy.conf", template_vars)
        main = (ROOT / "nginx" / "nginx.conf").read_text().replace("/etc/nginx/conf.d/", f"{d}/conf.d/")
        # Access logs off for the measurement (they are on in production, equally for all).
        main = main.replace("access_log /dev/stdout blobproxy;", "access_log off;")
        (d / "nginx.conf").write_text(main)
    binary = str(NGINX)
    return spawn(name, [binary, "-p", f"{d}/", "-c", str(d / "nginx.conf"), "-g", f"pid {d}/nginx.pid; daemon off;"])


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


def status(replica):
    return json.loads(http("GET", f"{replica}/status")[1])


def wait_drained(replica, timeout=300):
    start = time.time()
    while time.time() - start < timeout:
        s = status(replica)
        if s["dirty"] == 0 and s["queued_jobs"] == 0:
            return time.time() - start
        time.sleep(0.05)
    raise SystemExit(f"backlog not drained in {timeout}s: {status(replica)}")


TICK = os.sysconf("SC_CLK_TCK")
# The processes whose CPU each measured row reports, by role (filled in by main()).
METERED = {}


def process_tree(pid):
    """`pid` and its descendants (nginx's workers are children of its master)."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return pids


def cpu_seconds(pid):
    """User + system CPU of `pid` and its descendants, in seconds."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except OSError:
            pass
    return total


def cpu_snapshot():
    snap = {role: sum(cpu_seconds(p.pid) for p in ps) for role, ps in METERED.items()}
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    snap["wrk"] = usage.ru_utime + usage.ru_stime
    return snap


def cpu_per_request(before, after, requests):
    """Microseconds of CPU per request, per process role."""
    return {role: round(1e6 * (after[role] - before[role]) / max(requests, 1), 1) for role in after}


def wrk(url, mode, size, keys, prefix, conns, seconds=SECONDS, file=None):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--timeout", "20s", "-s", str(LUA), url, "--",
           mode, str(size), str(keys), prefix]
    if file:
        cmd.append(str(file))
    before = cpu_snapshot()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = cpu_snapshot()
    line = next(l for l in out.splitlines() if l.startswith("BENCH_JSON "))
    r = json.loads(line[len("BENCH_JSON "):])
    secs = r["duration_us"] / 1e6
    errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["status_errors"] + r["timeouts"]
    if errors > r["requests"] // 100:
        # Reported with its errors, not dropped: the rest of the run still measures.
        log(f"{mode} on {url}: {errors} errors in {r['requests']} requests; this row is not clean")
    return {
        "req_s": r["requests"] / secs,
        "mb_s": r["requests"] * size / secs / 1e6,
        "p50_ms": r["p50_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "requests": r["requests"],
        "errors": errors,
        "clean": errors <= r["requests"] // 100,
        "cpu_us_per_req": cpu_per_request(before, after, r["requests"]),
    }


def median_of(runs):
    """The run with the median requests/s, plus the spread: the S3 server's rate moves a lot
    between runs on this machine, so the alternative is measured several times."""
    runs = sorted(runs, key=lambda r: r["req_s"])
    return {**runs[len(runs) // 2], "runs_req_s": [r["req_s"] for r in runs]}


def redis_alone(port, size, conns, keys, requests):
    """What the same Redis (same AOF settings) takes on its own: SET of the same size from the
    same number of clients over as many keys. Every byte a PUT acknowledges goes through this
    Redis and its AOF, so no write-back design on this machine can beat it."""
    cpu_before = redis_cpu(port)
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set", "-d", str(size), "-c", str(conns),
                          "-n", str(requests), "-r", str(keys), "--csv"],
                         capture_output=True, text=True, check=True).stdout
    redis_us = 1e6 * (redis_cpu(port) - cpu_before) / requests
    row = next(line for line in out.splitlines() if line.startswith('"SET"'))
    fields = [f.strip('"') for f in row.split(",")]
    subprocess.run(f"redis-cli -p {port} --scan --pattern 'key:*' | xargs -r -n 500 redis-cli -p {port} DEL "
                   "> /dev/null", shell=True, check=True)
    req_s = float(fields[1])
    return {"req_s": req_s, "mb_s": req_s * size / 1e6, "p50_ms": float(fields[4]), "p99_ms": float(fields[6]),
            "requests": requests, "errors": 0, "clean": True, "redis_us_per_req": redis_us}


def s3_client(endpoint):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                        region_name="us-east-1",
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def best_sink(ideal, mode, size, keys, conns):
    """The ideal proxy's PUT ceiling: the better of two upstreams that cost nothing, one that
    answers before it reads the body and one that reads it first (see static.conf). A run with
    errors counts only if both had some."""
    runs = {path: wrk(ideal, mode, size, keys, path, conns) for path in ("/sink", "/sink-read")}
    clean = [r for r in runs.values() if not r["errors"]] or list(runs.values())
    best = max(clean, key=lambda r: r["req_s"])
    return {**best, "sinks_req_s": {path: r["req_s"] for path, r in runs.items()},
            "sinks_errors": {path: r["errors"] for path, r in runs.items()}}


def presigned_paths(s3, keys, method, path):
    """Writes presigned path+query lines (wrk sends them to the S3 server as they are)."""
    op = "get_object" if method == "GET" else "put_object"
    # A PUT carries what blobproxy's worker stores with each object (bench/lua/requests.lua
    # sends these headers): a fair alternative keeps the Content-Type and metadata too.
    extra = {} if method == "GET" else {"ContentType": "application/octet-stream",
                                        "Metadata": {"extension": "bin", "version": "1"}}
    with open(path, "w") as f:
        for k in keys:
            url = s3.generate_presigned_url(op, Params={"Bucket": BUCKET, "Key": k, **extra}, ExpiresIn=3600)
            f.write("/" + url.split("://", 1)[1].split("/", 1)[1] + "\n")
    return path


def rss_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def redis_cpu(port):
    """Redis's own CPU counters (user + system, all threads), in seconds."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "cpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


def redis_info(port, field):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "memory"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return 0


def preload(base, prefix, n, size):
    data = os.urandom(size)

    def put(i):
        http("PUT", f"{base}/blobs/{prefix}/{i}", data, {"Content-Type": "application/octet-stream"})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))


def settle(replica):
    """Every phase starts from a drained, idle system: one phase's backlog must not leak into
    the next one's figures."""
    wait_drained(replica, timeout=600)
    time.sleep(1)


def straight_put(replica, redis_port, worker):
    """Target 1: what a 1 KiB PUT costs Redis (its own CPU counters), straight to one replica
    with the drain paused, against a plain 1 KiB SET with the same AOF settings and clients."""
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        before = redis_cpu(redis_port)
        put = wrk(replica, "put_raw", 1024, 100000, "bench/straight", 32)
        put["redis_us_per_req"] = 1e6 * (redis_cpu(redis_port) - before) / put["requests"]
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    sets = redis_alone(redis_port, 1024, 32, 100000, 100000)
    return {"put": put, "set": sets, "ratio": put["redis_us_per_req"] / sets["redis_us_per_req"]}


def access_log_cost(env, port, rounds=2):
    """GET hit 1 KiB straight to a replica logging every request, and to one logging none
    (the keys of the 1 KiB GET phase are cached): req/s and the replica's CPU per request."""
    replicas = {}
    for setting, ip in [("on", "127.0.0.4"), ("off", "127.0.0.5")]:
        replicas[setting] = spawn(f"log-{setting}", [str(BIN), "serve"],
                                  {**env, "BLOBPROXY_BIND": f"{ip}:{port}", "BLOBPROXY_ACCESS_LOG": setting})
        wait_port(ip, port, f"replica with access log {setting}")
    runs = {"on": [], "off": []}
    for _ in range(rounds):
        for setting, ip in [("on", "127.0.0.4"), ("off", "127.0.0.5")]:
            before = cpu_seconds(replicas[setting].pid)
            r = wrk(f"http://{ip}:{port}", "get_raw", 1024, 2000, "bench/get/1KiB", 32)
            r["replica_us_per_req"] = 1e6 * (cpu_seconds(replicas[setting].pid) - before) / r["requests"]
            runs[setting].append(r)
    for p in replicas.values():
        p.terminate()
        p.wait(15)
    return {setting: median_of(rs) for setting, rs in runs.items()}


def make_tls_files(where):
    """A CA and a server certificate it signed for 127.0.0.1 (openssl), for the TLS phase."""
    where.mkdir()
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=where)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return where


def redis_tls_cost(env, port, rounds=3):
    """PUT and GET hit 1 KiB straight to a replica whose Redis connection is TLS (`rediss://`,
    a CA file), and to one on plain TCP, both to one redis-server serving a plain and a TLS
    port (the compose file's flags): req/s, and the replica's and Redis's CPU per request.
    Alone: `bench/.venv/bin/python bench/bench.py redis_tls` (after one `bench/run.sh`)."""
    tls = make_tls_files(work / "tls")
    plain_port, tls_port = free_port(), free_port()
    (work / "redis-tls").mkdir()
    # No automatic AOF rewrite: its fork's CPU would land in whichever run it happens in.
    redis = spawn("redis-tls", ["redis-server", "--port", str(plain_port), "--bind", "127.0.0.1",
                                "--dir", str(work / "redis-tls"), "--save", "", *REDIS_FLAGS,
                                "--auto-aof-rewrite-percentage", "0",
                                "--tls-port", str(tls_port), "--tls-cert-file", str(tls / "server.crt"),
                                "--tls-key-file", str(tls / "server.key"),
                                "--tls-ca-cert-file", str(tls / "ca.crt"), "--tls-auth-clients", "no"])
    wait_port("127.0.0.1", tls_port, "redis TLS port")
    urls = {"plain": f"redis://127.0.0.1:{plain_port}", "tls": f"rediss://127.0.0.1:{tls_port}"}
    replicas = {}
    for (kind, url), ip in zip(urls.items(), ["127.0.0.8", "127.0.0.9"]):
        ca = {"BLOBPROXY_REDIS_CA_FILE": str(tls / "ca.crt")} if kind == "tls" else {}
        replicas[kind] = (ip, spawn(f"redis-{kind}", [str(BIN), "serve"],
                                    {**env, "BLOBPROXY_BIND": f"{ip}:{port}", "BLOBPROXY_REDIS_URL": url, **ca}))
        wait_port(ip, port, f"replica on {kind} Redis")
    preload(f"http://{replicas['plain'][0]}:{port}", "bench/tls", 2000, 1024)
    runs = {f"{kind} {op}": [] for kind in urls for op in ["put", "get"]}
    for _ in range(rounds):
        for kind, (ip, proc) in replicas.items():
            for op, mode, keys, prefix in [("put", "put_raw", 100000, f"bench/tls-put/{kind}"),
                                           ("get", "get_raw", 2000, "bench/tls")]:
                before, redis_before = cpu_seconds(proc.pid), cpu_seconds(redis.pid)
                r = wrk(f"http://{ip}:{port}", mode, 1024, keys, prefix, 32)
                r["replica_us_per_req"] = 1e6 * (cpu_seconds(proc.pid) - before) / r["requests"]
                r["redis_us_per_req"] = 1e6 * (cpu_seconds(redis.pid) - redis_before) / r["requests"]
                runs[f"{kind} {op}"].append(r)
    for _, proc in replicas.values():
        proc.terminate()
        proc.wait(15)
    redis.terminate()
    redis.wait(15)
    return {name: median_of(rs) for name, rs in runs.items()}


def drain_latency(front, replica, env, s3_port, count=20000):
    """Target 4: one worker drains a backlog of `count` 1 KiB blobs through a proxy that holds
    every S3 request 0, 20 or 50 ms, with 16, 64, 256 or 512 uploads in flight (512: the
    default). Each row also has the CPU per object of the worker, the proxy, the S3 server and
    Redis while it drained: what the machine spends, and whether S3's distance costs CPU.
    The three delays of one in-flight count run back to back (a proxy each), so the ratio to
    0 ms compares runs seconds apart, not minutes: this machine's speed drifts."""
    delays = (0, 20, 50)
    proxies = {}
    for delay in delays:
        proxy_port = free_port()
        proxies[delay] = (proxy_port, spawn(f"delay-{delay}", [str(DELAY_PROXY), str(proxy_port), str(s3_port),
                                                                str(delay)]))
        wait_port("127.0.0.1", proxy_port, "delay proxy")
    rows = []
    for in_flight in (16, 64, 256, WORKER_CONCURRENCY):
        for delay in delays:
            proxy_port, proxy = proxies[delay]
            log(f"drain latency: {delay} ms, {in_flight} in flight")
            subprocess.run([str(BIN), "loadgen", "--url", front, "--amount", str(count), "--size", "1024",
                            "--concurrency", "32", "--raw", "--prefix", f"bench/latency/{delay}/{in_flight}"],
                           capture_output=True, text=True, check=True)
            started = time.time()
            others = {"proxy": proxy, "s3": METERED["s3"][0], "redis": METERED["redis"][0]}
            cpu_before = {role: cpu_seconds(p.pid) for role, p in others.items()}
            worker = spawn("latency-worker", [str(BIN), "worker"],
                           {**env, "BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{proxy_port}",
                            "BLOBPROXY_WORKER_CONCURRENCY": str(in_flight)})
            wait_drained(replica, timeout=900)
            seconds = time.time() - started
            rss = rss_kib(worker.pid, "VmHWM")
            cpu = {"worker": cpu_seconds(worker.pid),
                   **{role: cpu_seconds(p.pid) - cpu_before[role] for role, p in others.items()}}
            worker.terminate()
            worker.wait(15)
            rows.append({"delay_ms": delay, "in_flight": in_flight, "objects_s": count / seconds,
                         "bound_objects_s": in_flight / (delay / 1000) if delay else None,
                         "worker_peak_rss_kib": rss,
                         "cpu_us_per_object": {role: round(1e6 * c / count, 1) for role, c in cpu.items()}})
    for _, proxy in proxies.values():
        proxy.terminate()
        proxy.wait(15)
    return sorted(rows, key=lambda r: (r["delay_ms"], r["in_flight"]))


def otlp_sink():
    """An OTLP/HTTP receiver that takes every export and keeps nothing: what a replica sends
    its traces to in the tracing phase. Returns its address and a count of bytes received."""
    import http.server
    import threading
    received = {"bytes": 0, "exports": 0}

    class Sink(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received["bytes"] += len(body)
            received["exports"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", received


def tracing_cost(env, port, rounds=3):
    """PUT and GET hit 1 KiB straight to a replica that traces every request to an OTLP
    receiver (BLOBPROXY_OTLP_ENDPOINT, sample ratio 1), to one that traces 1% of them (ratio
    0.01, what a busy deployment would run), and to one that does not trace, alternated on the
    same Redis: req/s and the replica's CPU per request.
    Alone: `bench/.venv/bin/python bench/bench.py tracing` (after one `bench/run.sh`)."""
    sink, received = otlp_sink()
    replicas = {}
    ratios = {"off": None, "on": "1", "sampled": "0.01"}
    for kind, ip in [("off", "127.0.0.10"), ("on", "127.0.0.11"), ("sampled", "127.0.0.12")]:
        traced = {"BLOBPROXY_OTLP_ENDPOINT": sink, "BLOBPROXY_OTLP_SAMPLE_RATIO": ratios[kind]} if ratios[kind] else {}
        replicas[kind] = (ip, spawn(f"tracing-{kind}", [str(BIN), "serve"],
                                    {**env, "BLOBPROXY_BIND": f"{ip}:{port}", **traced}))
        wait_port(ip, port, f"replica with tracing {kind}")
    preload(f"http://{replicas['off'][0]}:{port}", "bench/traced", 2000, 1024)
    runs = {f"{kind} {op}": [] for kind in replicas for op in ["put", "get"]}
    for _ in range(rounds):
        for kind, (ip, proc) in replicas.items():
            for op, mode, keys, prefix in [("put", "put_raw", 100000, f"bench/traced-put/{kind}"),
                                           ("get", "get_raw", 2000, "bench/traced")]:
                before = cpu_seconds(proc.pid)
                r = wrk(f"http://{ip}:{port}", mode, 1024, keys, prefix, 32)
                r["replica_us_per_req"] = 1e6 * (cpu_seconds(proc.pid) - before) / r["requests"]
                runs[f"{kind} {op}"].append(r)
    for _, proc in replicas.values():
        proc.terminate()
        proc.wait(15)
    result = {name: median_of(rs) for name, rs in runs.items()}
    result["exported_bytes"] = received["bytes"]
    result["exports"] = received["exports"]
    return result


def tracing_alone():
    """The tracing phase on its own, with its own Redis and S3 server."""
    env, web_port = phase_alone()
    own_redis(env, "redis-tracing")
    print(json.dumps(tracing_cost(env, web_port), indent=1))


def own_redis(env, name):
    """A Redis of a phase run alone (the compose files' settings, no AOF rewrite), in `env`;
    returns its port."""
    port = free_port()
    (work / name).mkdir()
    spawn(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work / name),
                 "--save", "", *REDIS_FLAGS, "--auto-aof-rewrite-percentage", "0"])
    wait_port("127.0.0.1", port, "redis")
    env["BLOBPROXY_REDIS_URL"] = f"redis://127.0.0.1:{port}"
    return port


def phase_alone():
    """For a phase run on its own: an S3 server of its own, the settings that reach it, and a
    port for the phase's replicas."""
    import atexit
    atexit.register(stop_all)
    s3_port, web_port = free_port(), free_port()
    s3_root = Path(tempfile.mkdtemp(prefix="blobproxy-bench-s3-"))
    atexit.register(shutil.rmtree, s3_root, True)
    s3s = shutil.which("s3s-fs") or str(Path.home() / ".cargo/bin/s3s-fs")
    spawn("s3", [s3s, "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", ACCESS,
                 "--secret-key", SECRET, str(s3_root)])
    wait_port("127.0.0.1", s3_port, "s3s-fs")
    env = {"BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{s3_port}", "AWS_ACCESS_KEY_ID": ACCESS,
           "AWS_SECRET_ACCESS_KEY": SECRET, "RUST_LOG": "warn"}
    return env, web_port


def s3s_fs(name):
    """Another s3s-fs on a free port, on a directory of its own; returns its endpoint."""
    port, root = free_port(), Path(tempfile.mkdtemp(prefix=f"blobproxy-bench-{name}-"))
    s3s = shutil.which("s3s-fs") or str(Path.home() / ".cargo/bin/s3s-fs")
    spawn(name, [s3s, "--host", "127.0.0.1", "--port", str(port), "--access-key", ACCESS,
                 "--secret-key", SECRET, str(root)])
    wait_port("127.0.0.1", port, name)
    return f"http://127.0.0.1:{port}"


def mirror_env(name, endpoint):
    upper = name.upper()
    return {"BLOBPROXY_MIRRORS": name, f"BLOBPROXY_MIRROR_{upper}_S3_ENDPOINT": endpoint,
            f"BLOBPROXY_MIRROR_{upper}_S3_BUCKET": BUCKET}


def mirror_cost(count=5000, rounds=2):
    """What a mirror store costs the drain, and how fast a back-fill goes.
    Drain: `count` 1 KiB writes made with the worker stopped, then drained by a fresh worker
    with no mirror, and by one with a mirror (until the mirror has every one): CPU per object
    of the worker, Redis and each S3 server, alternated `rounds` times on one Redis.
    Back-fill: the primary's objects copied to an empty s3s-fs by `blobproxy backfill` and by
    the S3 client alone (bench/bare_copy.rs), 32 keys at once each, alternated.
    Alone: `bench/.venv/bin/python bench/bench.py mirror` (after one `bench/run.sh`)."""
    env, web_port = phase_alone()
    primary_pid = procs[-1].pid
    redis_port = own_redis(env, "redis-mirror")
    mirror = s3s_fs("mirror")
    mirror_pid = procs[-1].pid
    replica = f"http://127.0.0.1:{web_port}"
    spawn("mirror-replica", [str(BIN), "serve"], {**env, "BLOBPROXY_BIND": f"127.0.0.1:{web_port}"})
    wait_port("127.0.0.1", web_port, "replica")
    runs = {"none": [], "mirror": []}
    for r in range(rounds):
        for kind in runs:
            prefix = f"bench/mirror/{kind}/{r}"
            subprocess.run([str(BIN), "loadgen", "--url", replica, "--amount", str(count), "--size", "1024",
                            "--concurrency", "32", "--raw", "--prefix", prefix, "--json"],
                           capture_output=True, text=True, check=True)
            time.sleep(1)
            worker_env = {**env, **(mirror_env("m1", mirror) if kind == "mirror" else {})}
            before = {"redis": redis_cpu(redis_port), "primary_s3": cpu_seconds(primary_pid),
                      "mirror_s3": cpu_seconds(mirror_pid)}
            started = time.time()
            worker = spawn("mirror-worker", [str(BIN), "worker"], worker_env)
            before["worker"] = 0.0
            wait_drained(replica, timeout=600)
            if kind == "mirror":  # until the mirror has every write too
                subprocess.run([str(BIN), "flush", "--timeout-secs", "600"], env={**os.environ, **worker_env},
                               capture_output=True, text=True, check=True)
            seconds = time.time() - started
            after = {"redis": redis_cpu(redis_port), "primary_s3": cpu_seconds(primary_pid),
                     "mirror_s3": cpu_seconds(mirror_pid), "worker": cpu_seconds(worker.pid)}
            worker.terminate()
            worker.wait(15)
            runs[kind].append({"objects_s": count / seconds,
                               "us_per_object": {k: round(1e6 * (after[k] - before[k]) / count, 1) for k in after}})
    drain = {}
    for kind, rs in runs.items():
        per = {k: sorted(r["us_per_object"][k] for r in rs)[len(rs) // 2] for k in rs[0]["us_per_object"]}
        drain[kind] = {"objects_s": sorted(r["objects_s"] for r in rs)[len(rs) // 2], "us_per_object": per,
                       "runs": rs}
    backfill = {"blobproxy": [], "bare_copy": []}
    for r in range(rounds):
        for kind in backfill:
            target = s3s_fs(f"backfill-{kind}-{r}")
            started = time.time()
            if kind == "blobproxy":
                subprocess.run([str(BIN), "backfill", "m2", "--rate", "0", "--keys-at-once", "32"],
                               env={**os.environ, **env, **mirror_env("m2", target)}, capture_output=True, text=True, check=True)
                copied = 2 * rounds * count
                backfill[kind].append(copied / (time.time() - started))
            else:
                out = subprocess.run([str(BARE_COPY), target, "32"], env={**os.environ, **env}, capture_output=True, text=True,
                                     check=True)
                backfill[kind].append(json.loads(out.stdout)["objects_s"])
    median = {k: sorted(v)[len(v) // 2] for k, v in backfill.items()}
    return {"drain": drain, "backfill_objects_s": median, "backfill_runs": backfill,
            "drain_cost_ratio": {k: round(drain["mirror"]["us_per_object"][k] / max(drain["none"]["us_per_object"][k], 0.1), 2)
                                 for k in drain["none"]["us_per_object"]},
            "backfill_vs_bare_copy": round(median["blobproxy"] / median["bare_copy"], 2)}


def mirror_alone():
    print(json.dumps(mirror_cost(), indent=1))


def redis_tls_alone():
    """The Redis-over-TLS phase on its own, with its own S3 server, for a quick look."""
    env, web_port = phase_alone()
    print(json.dumps(redis_tls_cost(env, web_port), indent=1))


def main():
    import atexit

    atexit.register(stop_all)
    # Not SystemExit: a phase reports that as its own failure and the run would go on.
    def interrupted(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, interrupted)
    ports = {name: free_port() for name in ["redis", "s3", "dns", "web", "static", "front", "ideal", "bare"]}
    env = {
        "BLOBPROXY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}",
        "BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{ports['s3']}",
        "AWS_ACCESS_KEY_ID": ACCESS,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "BLOBPROXY_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "RUST_LOG": "warn",
    }
    (work / "redis").mkdir()
    # s3s-fs keeps objects as files: on /dev/shm (memory) its CPU per object is steady; on
    # this machine's disk it moved 4x between runs (measured with bench/drain_ab.py), which
    # no ratio survives.
    s3_root = Path(tempfile.mkdtemp(prefix="blobproxy-bench-s3-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    atexit.register(shutil.rmtree, s3_root, True)
    spawn("redis", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--dir", str(work / "redis"),
                    "--save", "", *REDIS_FLAGS])
    s3s = shutil.which("s3s-fs") or str(Path.home() / ".cargo/bin/s3s-fs")
    spawn("s3", [s3s, "--host", "127.0.0.1", "--port", str(ports["s3"]), "--access-key", ACCESS,
                 "--secret-key", SECRET, str(s3_root)])
    replica_ips = ["127.0.0.2", "127.0.0.3"]
    # The ceiling for any replica on this stack (bench/bare_replica.rs), two like ours.
    bare_ips = ["127.0.0.6", "127.0.0.7"]  # .4 and .5: the access-log phase's replicas
    (work / "hosts").write_text("".join(f"{ip} web\n" for ip in replica_ips) +
                                "".join(f"{ip} bare\n" for ip in bare_ips))
    spawn("dns", [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", "--bind-interfaces",
                  "--listen-address=127.0.0.1", "--no-resolv", "--no-hosts", "--user=root",
                  f"--port={ports['dns']}", f"--addn-hosts={work / 'hosts'}"])
    wait_port("127.0.0.1", ports["redis"], "redis")
    wait_port("127.0.0.1", ports["s3"], "s3s-fs")
    wait_port("127.0.0.1", ports["dns"], "dnsmasq")
    replicas = []
    for i, ip in enumerate(replica_ips):
        replicas.append(spawn(f"web{i + 1}", [str(BIN), "serve"],
                              {**env, "BLOBPROXY_BIND": f"{ip}:{ports['web']}", "BLOBPROXY_REPLICA_NAME": f"web-{i + 1}"}))
    for ip in replica_ips:
        wait_port(ip, ports["web"], "replica")
    worker = spawn("worker", [str(BIN), "worker"], env)
    bare_replicas = [spawn(f"bare{i + 1}", [str(BARE_REPLICA), f"{ip}:{ports['web']}", env["BLOBPROXY_REDIS_URL"]])
                     for i, ip in enumerate(bare_ips)]
    for ip in bare_ips:
        wait_port(ip, ports["web"], "bare replica")
    static_root = work / "static"
    static_root.mkdir()
    for name, size in SIZES:
        (static_root / f"{name}.bin").write_bytes(os.urandom(size))
    (static_root / "sink.json").write_text('{"msg":"stored"}')
    static_nginx = nginx("static", {"STATIC_PORT": ports["static"], "STATIC_ROOT": static_root}, static=True)
    common = {"NGINX_RESOLVER": f"127.0.0.1:{ports['dns']}", "NGINX_RESOLVER_VALID": "5s",
              "NGINX_CLIENT_MAX_BODY_SIZE": "22m"}
    front_nginx = nginx("front", {**common, "NGINX_PORT": ports["front"], "BLOBPROXY_UPSTREAM": f"web:{ports['web']}"})
    ideal_nginx = nginx("ideal", {**common, "NGINX_PORT": ports["ideal"], "BLOBPROXY_UPSTREAM": f"127.0.0.1:{ports['static']}"})
    bare_nginx = nginx("bare", {**common, "NGINX_PORT": ports["bare"], "BLOBPROXY_UPSTREAM": f"bare:{ports['web']}"})
    for name in ["static", "front", "ideal", "bare"]:
        wait_port("127.0.0.1", ports[name], f"nginx {name}")
    time.sleep(1)
    front = f"http://127.0.0.1:{ports['front']}"
    ideal = f"http://127.0.0.1:{ports['ideal']}"
    bare = f"http://127.0.0.1:{ports['bare']}"
    static = f"http://127.0.0.1:{ports['static']}"
    s3url = f"http://127.0.0.1:{ports['s3']}"
    replica = f"http://{replica_ips[0]}:{ports['web']}"
    s3 = s3_client(s3url)

    METERED.update({"nginx": [front_nginx], "ideal+static nginx": [ideal_nginx, static_nginx], "replicas": replicas, "redis": [procs[0]], "worker": [worker],
                    "bare nginx+replicas": [bare_nginx, *bare_replicas],
                    "s3": [procs[1]]})
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds_per_run": SECONDS,
               "machine": f"{os.cpu_count()} cores", "sizes": {}, "memory": {}, "drain": {}, "miss": {},
               "failures": []}

    def phase(name, run):
        """Runs one phase; a phase that fails is reported and the run goes on."""
        try:
            settle(replica)
            return run()
        except (Exception, SystemExit) as e:
            log(f"{name} failed: {e}")
            results["failures"].append(f"{name}: {e}")
            return None
    results["memory"]["idle_rss_kib"] = {f"web{i + 1}": rss_kib(p.pid, "VmRSS") for i, p in enumerate(replicas)}
    results["memory"]["idle_rss_kib"]["worker"] = rss_kib(worker.pid, "VmRSS")

    def sizes(name, size):
        conns = CONNECTIONS[size]
        row = {}
        log(f"{name}: GET")
        get_keys = {1024: 2000, 65536: 1000, 1 << 20: 64}[size]
        preload(front, f"bench/get/{name}", get_keys, size)
        wait_drained(replica)
        row["static_get"] = wrk(static, "get_path", size, 1, f"/{name}.bin", conns)
        row["ideal_get"] = wrk(ideal, "get_path", size, 1, f"/{name}.bin", conns)
        row["json_get"] = wrk(front, "get_json", size, get_keys, f"bench/get/{name}", conns)
        row["raw_get"] = wrk(front, "get_raw", size, get_keys, f"bench/get/{name}", conns)
        row["bare_get"] = wrk(bare, "get_raw", size, get_keys, f"bench/get/{name}", conns)
        get_file = presigned_paths(s3, [f"bench/get/{name}/{i}" for i in range(get_keys)], "GET", work / "get.txt")
        row["s3_get"] = median_of([wrk(s3url, "presigned_get", size, get_keys, "-", conns, file=get_file)
                                   for _ in range(S3_REPEATS)])
        log(f"{name}: PUT")
        put_keys = {1024: 100000, 65536: 4096, 1 << 20: 256}[size]
        row["ideal_put_raw"] = best_sink(ideal, "put_raw_sink", size, put_keys, conns)
        row["ideal_put_json"] = best_sink(ideal, "post_json_sink", size, put_keys, conns)
        settle(replica)
        row["json_put"] = wrk(front, "put_json", size, put_keys, f"bench/put/{name}", conns)
        settle(replica)
        row["raw_put"] = wrk(front, "put_raw", size, put_keys, f"bench/raw/{name}", conns)
        settle(replica)
        row["bare_put"] = wrk(bare, "put_raw", size, put_keys, f"bench/bare/{name}", conns)
        settle(replica)
        s3_puts = []
        for rep in range(S3_REPEATS):
            put_file = presigned_paths(s3, [f"direct/{name}/{rep}/{i}" for i in range(min(put_keys, 20000))],
                                       "PUT", work / "put.txt")
            s3_puts.append(wrk(s3url, "presigned_put", size, 0, "-", conns, file=put_file))
        row["s3_put"] = median_of(s3_puts)
        row["redis_set"] = redis_alone(ports["redis"], size, conns, put_keys,
                                       {1024: 100000, 65536: 20000, 1 << 20: 1200}[size])
        results["sizes"][name] = {"bytes": size, "connections": conns, **row}

    for name, size in SIZES:
        phase(f"{name} GET and PUT", lambda: sizes(name, size))

    log("PUT 1 KiB straight to one replica: Redis CPU per PUT against a plain SET")
    results["straight_put"] = phase("straight PUT", lambda: straight_put(replica, ports["redis"], worker))
    log("access log on / off")
    results["access_log"] = phase("access log", lambda: access_log_cost(env, ports["web"]))
    log("Redis over TLS / plain TCP")
    results["redis_tls"] = phase("Redis over TLS", lambda: redis_tls_cost(env, ports["web"]))
    results["tracing"] = phase("tracing", lambda: tracing_cost(env, ports["web"]))

    # Drain: a backlog written with the worker stopped, then drained by a fresh worker.
    def drain(name, size, count):
        nonlocal worker
        log(f"drain: {count} x {name}")
        worker.terminate()
        worker.wait(15)
        lg = subprocess.run([str(BIN), "loadgen", "--url", front, "--amount", str(count), "--size", str(size),
                             "--concurrency", "32", "--raw", "--prefix", f"bench/drain/{name}", "--json"],
                            capture_output=True, text=True, check=True)
        in_flight_peak = {f"web{i + 1}": rss_kib(p.pid, "VmHWM") for i, p in enumerate(replicas)}
        backlog_redis = redis_info(ports["redis"], "used_memory")
        started = time.time()
        worker = spawn("worker", [str(BIN), "worker"], env)
        METERED["worker"] = [worker]
        wait_drained(replica, timeout=600)
        seconds = time.time() - started
        direct_runs = []
        for rep in range(S3_REPEATS):
            direct_file = presigned_paths(s3, [f"direct/drain/{name}/{rep}/{i}" for i in range(min(count, 20000))],
                                          "PUT", work / "drain.txt")
            direct_runs.append(wrk(s3url, "presigned_put", size, 0, "-", WORKER_CONCURRENCY, file=direct_file))
        direct = median_of(direct_runs)
        results["drain"][name] = {"count": count, "seconds": seconds, "objects_s": count / seconds,
                                  "direct_s3_objects_s": direct["req_s"], "direct_s3_runs": direct["runs_req_s"],
                                  "redis_used_memory": backlog_redis,
                                  "write": json.loads(lg.stdout)["rows"][0],
                                  "worker_peak_rss_kib": rss_kib(worker.pid, "VmHWM")}
        results["memory"]["replica_peak_rss_kib_after_" + name] = in_flight_peak

    for name, size, count in [("1KiB", 1024, 10000), ("1MiB", 1 << 20, 1000)]:
        phase(f"drain {name}", lambda: drain(name, size, count))

    def latency():
        nonlocal worker
        worker.terminate()
        worker.wait(15)
        try:
            return drain_latency(front, replica, env, ports["s3"])
        finally:
            worker = spawn("worker", [str(BIN), "worker"], env)
            METERED["worker"] = [worker]

    results["drain_latency"] = phase("drain latency", latency)

    # GET on a cache miss: the 1 KiB drain backlog is in S3; drop it from the cache.
    def miss():
        log("cache miss")
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET,
                                                                                 Prefix="bench/drain/1KiB/")
                for o in page.get("Contents", [])]
        subprocess.run(f"redis-cli -p {ports['redis']} --scan --pattern 'bp:blob:bench/drain/1KiB/*' "
                       f"| xargs -r -n 500 redis-cli -p {ports['redis']} DEL > /dev/null", shell=True, check=True)
        miss_file = work / "miss.txt"
        miss_file.write_text("".join(f"/blobs/{k}\n" for k in keys))
        hit = wrk(front, "presigned_get", 1024, 0, "-", 32, seconds=3, file=miss_file)
        direct = wrk(s3url, "presigned_get", 1024, 0, "-", 32, seconds=3,
                     file=presigned_paths(s3, keys, "GET", work / "miss-direct.txt"))
        results["miss"] = {"keys": len(keys), "blobproxy": hit, "direct_s3": direct,
                           "all_misses": hit["requests"] <= len(keys)}

    phase("cache miss", miss)

    # Time until a 1 KiB write is in S3, when the system is not saturated (wc=1 answers then).
    def persist_latency():
        log("write-to-S3 latency")
        lg = subprocess.run([str(BIN), "loadgen", "--url", front, "--amount", "200", "--size", "1KiB",
                             "--concurrency", "2", "--raw", "--wc", "1", "--prefix", "bench/wc1", "--json"],
                            capture_output=True, text=True)
        if lg.returncode != 0:
            raise RuntimeError(f"loadgen --wc 1 exited {lg.returncode}: {lg.stderr.strip()[-500:]}")
        results["persist_latency"] = json.loads(lg.stdout)["rows"][0]

    phase("write-to-S3 latency", persist_latency)
    results["memory"]["peak_rss_kib"] = {f"web{i + 1}": rss_kib(p.pid, "VmHWM") for i, p in enumerate(replicas)}
    results["memory"]["redis_used_memory_peak"] = redis_info(ports["redis"], "used_memory_peak")
    return results


def ratios(results):
    """Every figure against its ceiling (the ideal proxy) and its alternative (direct S3)."""
    table = []
    for name, r in results["sizes"].items():
        ideal_get, ideal_put_raw, ideal_put_json = r["ideal_get"], r["ideal_put_raw"], r["ideal_put_json"]
        for label, key, ceiling, alt in [
            ("GET static file (nginx)", "static_get", None, None),
            ("GET ideal proxy (nginx->static)", "ideal_get", r["static_get"], None),
            ("GET hit JSON", "json_get", ideal_get, r["s3_get"]),
            ("GET hit raw", "raw_get", ideal_get, r["s3_get"]),
            ("GET bare replica (HGET, no checks)", "bare_get", ideal_get, r["s3_get"]),
            ("GET direct S3", "s3_get", ideal_get, None),
            ("PUT ideal proxy raw (sink)", "ideal_put_raw", None, None),
            ("PUT ideal proxy JSON (sink)", "ideal_put_json", None, None),
            ("PUT JSON", "json_put", ideal_put_json, r["s3_put"]),
            ("PUT raw", "raw_put", ideal_put_raw, r["s3_put"]),
            ("PUT bare replica raw (one SET)", "bare_put", ideal_put_raw, r["s3_put"]),
            ("PUT direct S3", "s3_put", ideal_put_raw, None),
            ("SET Redis alone (same AOF)", "redis_set", ideal_put_raw, None),
        ]:
            m = r[key]
            table.append({"size": name, "what": label, **m,
                          "vs_ceiling": m["req_s"] / ceiling["req_s"] if ceiling else None,
                          "vs_s3": m["req_s"] / alt["req_s"] if alt else None,
                          "vs_redis": m["req_s"] / r["redis_set"]["req_s"] if key.endswith("_put") else None})
    return table


# Rows measured through blobproxy: one with errors makes the run exit non-zero.
OURS = {"json_get", "raw_get", "json_put", "raw_put"}


def fmt_cpu(cpu):
    return ", ".join(f"{role} {us:.0f}" for role, us in cpu.items() if us) if cpu else ""


def print_table(results, table):
    print(f"\nblobproxy benchmark, {results['date']}, {results['machine']}, {results['seconds_per_run']} s per run")
    print(f"{'size':<6} {'what':<33} {'req/s':>9} {'MB/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'err':>5} "
          f"{'x ceiling':>9} {'x S3':>6} {'x Redis':>7}")
    for t in table:
        vc = f"{t['vs_ceiling']:.2f}" if t["vs_ceiling"] else "-"
        vs = f"{t['vs_s3']:.2f}" if t["vs_s3"] else "-"
        vr = f"{t['vs_redis']:.2f}" if t.get("vs_redis") else "-"
        spread = " (S3 runs: " + " / ".join(f"{x:.0f}" for x in t["runs_req_s"]) + ")" if "runs_req_s" in t else ""
        if "sinks_req_s" in t:
            spread = " (sinks: " + ", ".join(f"{p} {x:.0f} req/s, {t['sinks_errors'][p]} err"
                                             for p, x in t["sinks_req_s"].items()) + ")"
        unclean = "" if t.get("clean", True) else " NOT CLEAN (errors over 1%)"
        print(f"{t['size']:<6} {t['what']:<33} {t['req_s']:>9.0f} {t['mb_s']:>8.1f} {t['p50_ms']:>8.2f} "
              f"{t['p99_ms']:>8.2f} {t['errors']:>5} {vc:>9} {vs:>6} {vr:>7}{spread}{unclean}")
    print("\nCPU per request, us, by process (wrk, nginx, replicas, redis, worker, s3):")
    for t in table:
        if t.get("cpu_us_per_req"):
            print(f"  {t['size']:<6} {t['what']:<33} {fmt_cpu(t['cpu_us_per_req'])}")
    sp = results.get("straight_put")
    if sp:
        print(f"\nPUT 1 KiB straight to one replica (drain paused): {sp['put']['req_s']:.0f} req/s, "
              f"Redis {sp['put']['redis_us_per_req']:.1f} us CPU per PUT; plain SET 1 KiB (redis-benchmark, same "
              f"clients): Redis {sp['set']['redis_us_per_req']:.1f} us per SET; PUT/SET x{sp['ratio']:.2f}; "
              f"CPU per PUT: {fmt_cpu(sp['put']['cpu_us_per_req'])}")
    al = results.get("access_log")
    if al:
        on, off = al["on"], al["off"]
        print(f"Access log, GET hit 1 KiB straight to a replica: every request logged {on['req_s']:.0f} req/s, "
              f"replica {on['replica_us_per_req']:.1f} us CPU per request; none logged {off['req_s']:.0f} req/s, "
              f"{off['replica_us_per_req']:.1f} us (log costs x{on['replica_us_per_req'] / off['replica_us_per_req']:.2f} "
              f"CPU per request)")
    rt = results.get("redis_tls")
    if rt:
        for op in ["put", "get"]:
            plain, tls = rt[f"plain {op}"], rt[f"tls {op}"]
            print(f"Redis over TLS, {op.upper()} 1 KiB straight to a replica: TLS {tls['req_s']:.0f} req/s, replica "
                  f"{tls['replica_us_per_req']:.1f} + Redis {tls['redis_us_per_req']:.1f} us CPU per request; plain "
                  f"{plain['req_s']:.0f} req/s, {plain['replica_us_per_req']:.1f} + {plain['redis_us_per_req']:.1f} us "
                  f"(TLS costs x{tls['replica_us_per_req'] / plain['replica_us_per_req']:.2f} replica, "
                  f"x{tls['redis_us_per_req'] / plain['redis_us_per_req']:.2f} Redis CPU per request)")
    tr = results.get("tracing")
    if tr:
        for op in ["put", "get"]:
            off, on, sampled = tr[f"off {op}"], tr[f"on {op}"], tr[f"sampled {op}"]
            print(f"Tracing, {op.upper()} 1 KiB straight to a replica: every request traced {on['req_s']:.0f} req/s, "
                  f"replica {on['replica_us_per_req']:.1f} us CPU per request; 1% traced {sampled['req_s']:.0f} req/s, "
                  f"{sampled['replica_us_per_req']:.1f} us; off {off['req_s']:.0f} req/s, "
                  f"{off['replica_us_per_req']:.1f} us (x{on['replica_us_per_req'] / off['replica_us_per_req']:.2f} "
                  f"and x{sampled['replica_us_per_req'] / off['replica_us_per_req']:.2f} CPU per request)")
    for name, d in results["drain"].items():
        print(f"drain {d['count']} x {name}: {d['objects_s']:.0f} objects/s in {d['seconds']:.1f} s; direct S3 PUT at "
              f"concurrency {WORKER_CONCURRENCY}: {d['direct_s3_objects_s']:.0f} objects/s "
              f"(x{d['objects_s'] / d['direct_s3_objects_s']:.2f}; runs "
              f"{' / '.join(f'{x:.0f}' for x in d['direct_s3_runs'])}); Redis used {d['redis_used_memory'] / 2**20:.0f} MiB "
              f"for the backlog")
    rows = results.get("drain_latency")
    if rows:
        print("\nDrain of 20,000 x 1 KiB by one worker, S3 requests held by a proxy:")
        print(f"  {'delay ms':>8} {'in flight':>9} {'objects/s':>10} {'bound':>8} {'x 0 ms':>7} {'peak RSS MiB':>12}")
        at_zero = {r["in_flight"]: r["objects_s"] for r in rows if r["delay_ms"] == 0}
        for r in rows:
            bound = f"{r['bound_objects_s']:.0f}" if r["bound_objects_s"] else "-"
            print(f"  {r['delay_ms']:>8} {r['in_flight']:>9} {r['objects_s']:>10.0f} {bound:>8} "
                  f"{r['objects_s'] / at_zero[r['in_flight']]:>7.2f} {r['worker_peak_rss_kib'] / 1024:>12.1f}"
                  f"  CPU us/object: {fmt_cpu(r['cpu_us_per_object'])}"
                  f"{'  (default)' if r['in_flight'] == WORKER_CONCURRENCY else ''}")
    m = results.get("miss")
    if m:
        print(f"GET miss 1KiB (from S3, re-cached): {m['blobproxy']['req_s']:.0f} req/s p99 "
              f"{m['blobproxy']['p99_ms']:.1f} ms; direct S3 GET {m['direct_s3']['req_s']:.0f} req/s "
              f"(x{m['blobproxy']['req_s'] / m['direct_s3']['req_s']:.2f})"
              f"{'' if m['all_misses'] else ' (keys ran out: some were hits)'}")
    p = results.get("persist_latency")
    if p:
        print(f"1 KiB PUT until in S3 (wc=1, concurrency 2): p50 {p['p50_ms']:.0f} ms, p99 {p['p99_ms']:.0f} ms")
    mem = results["memory"]
    print(f"RSS idle: {', '.join(f'{k} {v / 1024:.1f} MiB' for k, v in mem['idle_rss_kib'].items())}; "
          f"Redis used_memory peak {mem['redis_used_memory_peak'] / 2**20:.0f} MiB")
    # Bytes in flight per replica (nginx splits the connections over the two): the size
    # phases peak with 16 connections of 1 MiB JSON bodies (1.37 MiB each), the 1 MiB drain
    # backlog with 32 raw 1 MiB PUTs.
    for phase, in_flight in [("1KiB", 16 * 1.37 / 2), ("1MiB", 32 / 2)]:
        peaks = mem.get(f"replica_peak_rss_kib_after_{phase}")
        if not peaks:
            continue
        print(f"RSS peak by the end of the {'size phases' if phase == '1KiB' else '1 MiB backlog'}: "
              + ", ".join(f"{k} {v / 1024:.1f} MiB (x{(v - mem['idle_rss_kib'][k]) / 1024 / in_flight:.1f} of "
                          f"~{in_flight:.0f} MiB in flight, above idle)" for k, v in peaks.items()))
    for failure in results["failures"]:
        print(f"FAILED: {failure}")


def our_failures(results):
    """What makes the run fail: a phase that could not run, or a blobproxy row with errors."""
    bad = list(results["failures"])
    for name, r in results["sizes"].items():
        bad += [f"{name} {key}: {r[key]['errors']} errors" for key in OURS if not r[key]["clean"]]
    return bad


def chart(table, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart")
        return
    rows = [t for t in table if t["vs_ceiling"] is not None and "ideal" not in t["what"]]
    labels = [f"{t['size']} {t['what']}" for t in rows]
    fig, ax = plt.subplots(figsize=(10, 0.4 * len(rows) + 1.5))
    ax.barh(labels, [t["vs_ceiling"] for t in rows], color="#4c72b0", label="x ideal proxy (ceiling)")
    ax.barh(labels, [t["vs_s3"] or 0 for t in rows], color="#dd8452", alpha=0.6, height=0.4, label="x direct S3")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("requests/s ratio")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title("blobproxy through nginx: ratio to the ideal proxy and to direct S3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    if sys.argv[1:] == ["tracing"]:
        tracing_alone()
        sys.exit(0)
    if sys.argv[1:] == ["mirror"]:
        mirror_alone()
        sys.exit(0)
    if sys.argv[1:] == ["redis_tls"]:
        redis_tls_alone()
        sys.exit(0)
    res = main()
    tab = ratios(res)
    res["table"] = tab
    (OUT / "results.json").write_text(json.dumps(res, indent=2))
    print_table(res, tab)
    chart(tab, OUT / "results.png")
    if our_failures(res):
        sys.exit(1)
