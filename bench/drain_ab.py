#!/usr/bin/env python3
"""The drain, A/B: objects/s and CPU per object of each process, against direct S3 PUTs.

A drain is CPU-bound on this machine (worker, S3 server and Redis share two cores), so the
figure that moves when the code changes is CPU per object, per process. Each round starts a
fresh Redis and a fresh s3s-fs directory, writes a backlog with no worker running, drains it
with each worker binary in turn (A, B, ...; the order alternates between rounds), then sends
the same number of presigned PUTs straight to the same s3s-fs with wrk at the worker's
concurrency. CPU comes from /proc/<pid>/stat (user + system) before and after. With
--client-alone it also PUTs the same blobs with the worker's S3 client and nothing else
(bench/s3_client_alone.rs), with as many uploads in flight as the worker's settings allow
(concurrency, and its byte budget at large sizes): the most a drain built on that client can
reach here. --bare-drain adds the same client reading each blob out of Redis first with one
GET and nothing else: the least any drain out of Redis pays on this stack.

    bench/.venv/bin/python bench/drain_ab.py                          # target/release/blobproxy
    bench/.venv/bin/python bench/drain_ab.py --worker /tmp/old --worker target/release/blobproxy
    cargo build --release --example s3_client_alone && bench/.venv/bin/python bench/drain_ab.py \
        --s3-root /dev/shm --client-alone target/release/examples/s3_client_alone

Run bench/run.sh once first: it installs wrk, the servers and the venv (boto3).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import bench
from bench import BIN, free_port, log, spawn, wait_port, work

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def dirty_and_queued(url):
    with urllib.request.urlopen(f"{url}/status", timeout=10) as r:
        s = json.loads(r.read())
    return s["dirty"] + s["queued_jobs"]


def alone_rows(args):
    """The worker's S3 client without the worker: alone, and as bare drains out of Redis."""
    if not args.client_alone:
        return []
    bare = [("bare drain, redis-rs", ["--from-redis", "redis-rs"]),
            ("bare drain, raw read", ["--from-redis", "raw"])] if args.bare_drain else []
    return [("S3 client alone", [])] + bare


def round_trip(args, round_no, workers):
    """One round: a fresh Redis and S3 directory per drain; returns a row per worker + direct."""
    rows = []
    order = workers if round_no % 2 == 0 else list(reversed(workers))
    alone = [(label, ("alone", extra)) for label, extra in alone_rows(args)]
    for label, binary in order + alone + [("direct S3", None)]:
        d = work / f"r{round_no}-{label.replace(' ', '_').replace('/', '_')}"
        (d / "redis").mkdir(parents=True)
        s3_dir = Path(tempfile.mkdtemp(prefix="drain-s3-", dir=args.s3_root))
        ports = {name: free_port() for name in ["redis", "s3", "web"]}
        env = {"BLOBPROXY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}",
               "BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{ports['s3']}",
               "BLOBPROXY_BIND": f"127.0.0.1:{ports['web']}",
               "BLOBPROXY_WORKER_CONCURRENCY": str(args.concurrency),
               "AWS_ACCESS_KEY_ID": bench.ACCESS, "AWS_SECRET_ACCESS_KEY": bench.SECRET, "RUST_LOG": "warn"}
        redis = spawn("redis", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--dir",
                                str(d / "redis"), "--save", "", *bench.REDIS_FLAGS])
        s3s = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
        s3 = spawn("s3", [s3s, "--host", "127.0.0.1", "--port", str(ports["s3"]), "--access-key", bench.ACCESS,
                          "--secret-key", bench.SECRET, str(s3_dir)])
        wait_port("127.0.0.1", ports["redis"], "redis")
        wait_port("127.0.0.1", ports["s3"], "s3s-fs")
        proxy = None
        if args.delay_ms is not None and binary is not None:
            # S3 at a distance, for the worker and the client alone (not for direct S3):
            # every request held delay_ms first.
            ports["proxy"] = free_port()
            proxy = spawn("proxy", [str(bench.DELAY_PROXY), str(ports["proxy"]), str(ports["s3"]),
                                    str(args.delay_ms)])
            wait_port("127.0.0.1", ports["proxy"], "delay proxy")
            env["BLOBPROXY_S3_ENDPOINT"] = f"http://127.0.0.1:{ports['proxy']}"
        if binary is None:
            (s3_dir / bench.BUCKET).mkdir()  # no replica here to create the bucket
            client = bench.s3_client(f"http://127.0.0.1:{ports['s3']}")
            keys = [f"direct/{i}" for i in range(args.count)]
            paths = bench.presigned_paths(client, keys, "PUT", d / "put.txt")
            before = cpu_seconds(s3.pid)
            r = bench.wrk(f"http://127.0.0.1:{ports['s3']}", "presigned_put", args.size, 0, "-", args.concurrency,
                          seconds=args.seconds, file=paths)
            cpu = cpu_seconds(s3.pid) - before
            rows.append({"label": label, "objects_s": r["req_s"], "s3_ms": 1000 * cpu / r["requests"]})
        elif isinstance(binary, tuple):
            before = cpu_seconds(s3.pid)
            proxy_before = cpu_seconds(proxy.pid) if proxy else 0
            # At the worker's CPU priority, as the worker runs.
            out = subprocess.run(["nice", "-n", "10", args.client_alone, str(args.count), str(args.size),
                                  str(args.concurrency), *binary[1]]
                                 + (["--ignore-byte-budget"] if args.alone_ignores_budget else []),
                                 env={**os.environ, **env}, check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append({"label": label, "objects_s": r["objects_s"], "worker_ms": r["client_ms"],
                         "s3_ms": 1000 * (cpu_seconds(s3.pid) - before) / args.count, "in_flight": r["in_flight"]})
            if "redis_ms" in r:
                rows[-1]["redis_ms"] = r["redis_ms"]
            if proxy:
                rows[-1]["proxy_ms"] = 1000 * (cpu_seconds(proxy.pid) - proxy_before) / args.count
        else:
            web = spawn("web", [binary, "serve"], env)
            wait_port("127.0.0.1", ports["web"], "replica")
            url = f"http://127.0.0.1:{ports['web']}"
            subprocess.run([binary, "loadgen", "--url", url, "--amount", str(args.count), "--size", str(args.size),
                            "--concurrency", "32", "--raw", "--prefix", "drain"], check=True, capture_output=True)
            if args.sync:
                os.sync()  # the backlog's AOF reaches the disk before the drain, not during it
            before = {p: cpu_seconds(p.pid) for p in (redis, s3, proxy) if p}
            started = time.time()
            worker = spawn("worker", [binary, "worker"], env)
            while dirty_and_queued(url):
                time.sleep(0.05)
            seconds = time.time() - started
            cpu = {p: cpu_seconds(p.pid) - before[p] for p in before}
            worker_cpu = cpu_seconds(worker.pid)
            worker.terminate()
            worker.wait(15)
            web.terminate()
            web.wait(15)
            rows.append({"label": label, "objects_s": args.count / seconds,
                         "worker_ms": 1000 * worker_cpu / args.count, "s3_ms": 1000 * cpu[s3] / args.count,
                         "redis_ms": 1000 * cpu[redis] / args.count})
            if proxy:
                rows[-1]["proxy_ms"] = 1000 * cpu[proxy] / args.count
        for p in (s3, redis, proxy):
            if p is None:
                continue
            p.terminate()
            p.wait(15)
        shutil.rmtree(s3_dir, ignore_errors=True)
        log(f"round {round_no + 1} {label}: " + ", ".join(
            f"{k} {v:.2f}" for k, v in rows[-1].items() if k != "label"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="append", help="a blobproxy binary (repeat to compare several)")
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=bench.WORKER_CONCURRENCY)
    parser.add_argument("--s3-root", default=str(work), help="where the S3 server keeps its objects "
                        "(e.g. /dev/shm, to take the file system's inode allocation out of the figures)")
    parser.add_argument("--sync", action="store_true", help="sync(2) after writing the backlog")
    parser.add_argument("--client-alone", metavar="BINARY",
                        help="also time the worker's S3 client alone (no Redis, no queue): "
                        "target/release/examples/s3_client_alone")
    parser.add_argument("--bare-drain", action="store_true",
                        help="with --client-alone, also the least a drain out of Redis can be: each blob "
                        "read with one GET (redis-rs, then a raw read) before the client's PUT")
    parser.add_argument("--alone-ignores-budget", action="store_true",
                        help="the client alone keeps --concurrency uploads in flight whatever their bytes "
                        "(by default it is bounded by the worker's byte budget, as the worker is)")
    parser.add_argument("--seconds", type=int, default=4, help="length of each direct-S3 wrk run")
    parser.add_argument("--delay-ms", type=int, help="put the worker's (and the client alone's) S3 behind "
                        "bench/delay_proxy.rs, "
                        "which holds each request this long (build it: cargo build --release --example "
                        "delay_proxy)")
    args = parser.parse_args()
    binaries = args.worker or [str(BIN)]
    workers = [(f"{chr(65 + i)} {os.path.basename(b)}", b) for i, b in enumerate(binaries)]
    rows = [row for r in range(args.rounds) for row in round_trip(args, r, workers)]
    print(f"\ndrain of {args.count} x {args.size} bytes, concurrency {args.concurrency}, "
          f"{args.rounds} rounds (median, then each round)")
    print(f"{'':28} {'objects/s':>10} {'x direct':>9} {'worker ms':>10} {'s3s-fs ms':>10} {'redis ms':>9}"
          f" {'proxy ms':>9}   (CPU per object)")
    direct = statistics.median(r["objects_s"] for r in rows if r["label"] == "direct S3")
    for label in [w[0] for w in workers] + [label for label, _ in alone_rows(args)] + ["direct S3"]:
        mine = [r for r in rows if r["label"] == label]

        def med(k):
            values = [r[k] for r in mine if k in r]
            return f"{statistics.median(values):.3f}" if values else "-"

        rate = statistics.median(r["objects_s"] for r in mine)
        print(f"{label:28} {rate:10.0f} {rate / direct:9.2f} {med('worker_ms'):>10} {med('s3_ms'):>10} "
              f"{med('redis_ms'):>9} {med('proxy_ms'):>9}   runs: " + ", ".join(f"{r['objects_s']:.0f}" for r in mine))


if __name__ == "__main__":
    import atexit

    atexit.register(bench.stop_all)
    main()
