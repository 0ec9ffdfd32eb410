#!/usr/bin/env python3
"""Redis CPU per PUT: one Redis against a 3-master Redis Cluster, each master (and the one Redis)
with one replica, in one run.

Starts a redis-server, a six-node cluster (`redis-cli --cluster create --cluster-replicas 1`),
s3s-fs, and one `blobproxy serve` against each (no worker runs, so the drain's own Redis work
is left out: this measures the write path). `blobproxy loadgen` writes the same number of
blobs to each; the Redis CPU (user + system, from /proc) each master spent is divided by the
writes. Usage: bench/cluster_cpu.py [--binary target/release/blobproxy] [--amount 20000]
[--size 1KiB] [--concurrency 64]. Prints one line per setup and the ratio.
"""
import argparse
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    while True:
        port = random.randint(20000, 32000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            pass


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def redis(port, workdir, cluster):
    d = os.path.join(workdir, f"redis-{port}")
    os.makedirs(d)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes", "--appendfsync", "everysec", "--dir", d]
    if cluster:
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "5000"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    wait_port(port)
    return p


def serve(binary, env, port):
    p = subprocess.Popen([binary, "serve"], env={**os.environ, **env,
                         "BLOBPROXY_BIND": f"127.0.0.1:{port}", "RUST_LOG": "warn"},
                         stdout=subprocess.DEVNULL)
    wait_port(port, 60)
    time.sleep(1)
    return p


def load(binary, port, args, prefix):
    subprocess.run([binary, "loadgen", "--url", f"http://127.0.0.1:{port}", "--raw",
                    "--amount", str(args.amount), "--size", args.size,
                    "--concurrency", str(args.concurrency), "--prefix", prefix],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="target/release/blobproxy")
    ap.add_argument("--amount", type=int, default=20000)
    ap.add_argument("--size", default="1KiB")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bp-cluster-cpu-")
    procs = []
    try:
        s3_port = free_port()
        s3_dir = os.path.join(work, "s3")
        os.makedirs(s3_dir)
        s3s = shutil.which("s3s-fs") or os.path.expanduser("~/.cargo/bin/s3s-fs")
        procs.append(subprocess.Popen([s3s, "--host", "127.0.0.1", "--port", str(s3_port),
                                       "--access-key", "bench", "--secret-key", "bench-secret",
                                       s3_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(s3_port)
        common = {"BLOBPROXY_S3_ENDPOINT": f"http://127.0.0.1:{s3_port}",
                  "BLOBPROXY_S3_BUCKET": "bench", "AWS_ACCESS_KEY_ID": "bench",
                  "AWS_SECRET_ACCESS_KEY": "bench-secret", "BLOBPROXY_S3_VERSIONING": "off"}

        single_port = free_port()
        single = redis(single_port, work, False)
        procs.append(single)
        # Like each cluster master, the one Redis feeds one replica.
        replica_port = free_port()
        procs.append(redis(replica_port, work, False))
        subprocess.run(["redis-cli", "-p", str(replica_port), "replicaof", "127.0.0.1",
                        str(single_port)], check=True, stdout=subprocess.DEVNULL)
        ports = [free_port() for _ in range(6)]
        nodes = [redis(p, work, True) for p in ports]
        procs += nodes
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "1", "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL)
        while True:
            info = subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "info"],
                                  capture_output=True, text=True).stdout
            if "cluster_state:ok" in info:
                break
            time.sleep(0.2)
        time.sleep(3)  # replicas attach
        masters = []
        for line in subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "nodes"],
                                   capture_output=True, text=True).stdout.splitlines():
            f = line.split()
            if "master" in f[2]:
                port = int(f[1].split(":")[1].split("@")[0])
                masters.append(nodes[ports.index(port)])

        results = {}
        for name, env, watched in [
            ("one Redis", {"BLOBPROXY_REDIS_URL": f"redis://127.0.0.1:{single_port}"}, [single]),
            ("3-master cluster", {"BLOBPROXY_REDIS_CLUSTER_NODES":
                                  ",".join(f"redis://127.0.0.1:{p}" for p in ports)}, masters),
        ]:
            port = free_port()
            server = serve(args.binary, {**common, **env}, port)
            procs.append(server)
            before = [cpu_seconds(p.pid) for p in watched]
            started = time.time()
            load(args.binary, port, args, name.split()[0])
            elapsed = time.time() - started
            spent = [cpu_seconds(p.pid) - b for p, b in zip(watched, before)]
            per_put = [s / args.amount * 1e6 for s in spent]
            results[name] = per_put
            print(f"{name}: {args.amount} PUTs of {args.size} in {elapsed:.1f} s "
                  f"({args.amount / elapsed:.0f}/s); Redis CPU per PUT per master (us): "
                  + ", ".join(f"{x:.1f}" for x in per_put)
                  + f"; all masters: {sum(per_put):.1f}")
            server.terminate()
            server.wait()
        one = results["one Redis"][0]
        cluster = results["3-master cluster"]
        print(f"busiest master / one Redis: {max(cluster) / one:.2f}; "
              f"all masters / one Redis: {sum(cluster) / one:.2f}")
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
