#!/usr/bin/env python3
"""Where the CPU goes under one load: a profile of the whole write-back path.

Starts redis-server (the benchmark's settings), s3s-fs, one `blobproxy serve` and one
`blobproxy worker` on 127.0.0.1, loads the replica straight (no nginx) with wrk, records every
CPU with `perf record -a -g` in the middle of the load, and prints each process's share of the
samples and its hottest symbols. With `inferno` installed (`cargo install inferno`) it also
writes a flamegraph to bench/profile-<mode>-<size>.svg.

    bench/.venv/bin/python bench/profile.py put_raw 1048576      # any mode of lua/requests.lua
    bench/.venv/bin/python bench/profile.py drain 1024           # a backlog drained (10,000; 2 GiB at most)

`perf` comes from Debian's linux-perf package; run as root (or lower kernel.perf_event_paranoid).
"""

import collections
import os
import shutil
import subprocess
import sys
import time

import bench
from bench import BIN, ROOT, spawn, wait_port, free_port, log, work

SECONDS = 5  # recorded; the load runs 2 s longer on each side
CONNECTIONS = {"put_raw": 16, "put_json": 32, "get_raw": 32, "get_json": 32}


def top_symbols(data, tids, count=12):
    out = subprocess.run(["perf", "report", "-i", data, "--tid", ",".join(map(str, tids)), "--no-children",
                          "--sort", "dso,sym", "--stdio", "-g", "none"], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("#")][:count]


def samples_by_process(data):
    """Sample counts by process id, and each process's thread ids."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "pid,tid"], capture_output=True, text=True).stdout
    counts, threads = collections.Counter(), collections.defaultdict(set)
    for line in out.splitlines():
        ids = line.split()[-1].split("/") if line.strip() else []
        if len(ids) == 2 and all(i.isdigit() for i in ids):
            counts[int(ids[0])] += 1
            threads[int(ids[0])].add(int(ids[1]))
    return counts, threads


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    mode, size = sys.argv[1], int(sys.argv[2])
    if not shutil.which("perf"):
        raise SystemExit("perf is missing: apt-get install linux-perf")
    ports = {name: free_port() for name in ["redis", "s3", "web"]}
    env = {"BLOBPROXY_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}",
           "BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{ports['s3']}",
           "BLOBPROXY_BIND": f"127.0.0.1:{ports['web']}",
           "AWS_ACCESS_KEY_ID": bench.ACCESS, "AWS_SECRET_ACCESS_KEY": bench.SECRET, "RUST_LOG": "warn"}
    (work / "redis").mkdir()
    (work / "s3").mkdir()
    names = {}
    p = spawn("redis", ["redis-server", "--port", str(ports["redis"]), "--bind", "127.0.0.1", "--dir",
                        str(work / "redis"), "--save", "", *bench.REDIS_FLAGS])
    names[p.pid] = "redis-server"
    s3s = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
    p = spawn("s3", [s3s, "--host", "127.0.0.1", "--port", str(ports["s3"]), "--access-key", bench.ACCESS,
                     "--secret-key", bench.SECRET, str(work / "s3")])
    names[p.pid] = "s3s-fs"
    wait_port("127.0.0.1", ports["redis"], "redis")
    wait_port("127.0.0.1", ports["s3"], "s3s-fs")
    p = spawn("web", [str(BIN), "serve"], env)
    names[p.pid] = "blobproxy serve"
    wait_port("127.0.0.1", ports["web"], "replica")
    url = f"http://127.0.0.1:{ports['web']}"
    data = work / "perf.data"
    record = ["perf", "record", "-a", "-g", "-o", str(data), "--", "sleep", str(SECONDS)]
    if mode == "drain":
        count = min(10000, (2 << 30) // size)  # at most 2 GiB in Redis (2,048 at 1 MiB)
        log(f"writing a backlog of {count} blobs with no worker running")
        subprocess.run([str(BIN), "loadgen", "--url", url, "--amount", str(count), "--size", str(size),
                        "--concurrency", "32", "--raw", "--prefix", "profile"], check=True,
                       capture_output=True)
        worker = spawn("worker", [str(BIN), "worker"], env)
        names[worker.pid] = "blobproxy worker"
        subprocess.run(record, check=True, capture_output=True)
    else:
        worker = spawn("worker", [str(BIN), "worker"], env)
        names[worker.pid] = "blobproxy worker"
        # A GET load reads the keys preloaded here (cache hits); a PUT load writes new ones.
        keys = 2000 if mode.startswith("get") else 100000
        if mode.startswith("get"):
            bench.preload(url, "profile", keys, size)
        load = subprocess.Popen(["wrk", "-t2", f"-c{CONNECTIONS.get(mode, 32)}", f"-d{SECONDS + 4}s",
                                 "-s", str(bench.LUA), url, "--", mode, str(size), str(keys), "profile"],
                                stdout=subprocess.PIPE, text=True)
        names[load.pid] = "wrk (the load)"
        time.sleep(2)
        subprocess.run(record, check=True, capture_output=True)
        out, _ = load.communicate()
        rate = next((line for line in out.splitlines() if line.startswith("Requests/sec")), "")
        log(f"wrk: {rate.strip()}")
    counts, threads = samples_by_process(str(data))
    total = sum(counts.values()) or 1
    print(f"\nCPU samples by process ({mode}, {size} bytes, {SECONDS} s, all CPUs):")
    others = collections.Counter()
    for pid, n in counts.most_common():
        if pid in names:
            print(f"  {100 * n / total:5.1f}%  {names[pid]} (pid {pid})")
        else:
            comm = subprocess.run(["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True).stdout
            if pid == 0:
                comm = "idle"
            others[comm.strip() or "processes gone since (Redis's AOF-rewrite children, loadgen)"] += n
    for comm, n in others.most_common(6):
        print(f"  {100 * n / total:5.1f}%  {comm}")
    for pid, name in names.items():
        if name.startswith("wrk"):
            continue
        print(f"\nhottest symbols of {name} (share of its own samples):")
        for line in top_symbols(str(data), sorted(threads.get(pid, {pid}))):
            print(f"  {line}")
    if shutil.which("inferno-collapse-perf") and shutil.which("inferno-flamegraph"):
        svg = ROOT / "bench" / f"profile-{mode}-{size}.svg"
        script = subprocess.run(["perf", "script", "-i", str(data)], capture_output=True, check=True)
        folded = subprocess.run(["inferno-collapse-perf"], input=script.stdout, capture_output=True, check=True)
        svg.write_bytes(subprocess.run(["inferno-flamegraph"], input=folded.stdout, capture_output=True,
                                       check=True).stdout)
        print(f"\nflamegraph: {svg}")
    else:
        print("\n(no flamegraph: cargo install inferno)")


if __name__ == "__main__":
    import atexit

    atexit.register(bench.stop_all)
    main()
