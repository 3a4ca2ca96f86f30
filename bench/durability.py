"""What durability costs the request path: ``audit.log`` in direct mode against a Redis master
alone, with a replica, with ``AUDIT_REDIS_WAIT_REPLICAS=1`` (a WAIT pipelined after each push),
and with the append-only file (fsync every second, or at every write). Same run, same machine.

    make bench-durability   # or: python bench/durability.py [--calls 5000] [--rounds 3]

Each set-up gets servers of its own on spare loopback ports, started and stopped by PID, with
their files in a temporary folder. One thread calls ``audit.log`` in a request context, one call
after the other, so a figure is the latency one request pays; the rounds interleave the set-ups
and the table shows the median round.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_audit import FlaskAudit

#: (label, replica?, AUDIT_REDIS_WAIT_REPLICAS, appendonly, appendfsync)
SETUPS = (
    ("master alone", False, 0, "no", "everysec"),
    ("master + replica", True, 0, "no", "everysec"),
    ("master + replica, WAIT 1", True, 1, "no", "everysec"),
    ("master alone, appendonly everysec", False, 0, "yes", "everysec"),
    ("master alone, appendonly always", False, 0, "yes", "always"),
    ("master + replica, WAIT 1, appendonly everysec", True, 1, "yes", "everysec"),
)


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    folder: Path, port: int, appendonly: str, fsync: str, replica_of: int | None
) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)]
    args += ["--appendonly", appendonly, "--appendfsync", fsync]
    if replica_of:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            if not replica_of or client.info("replication").get("master_link_status") == "up":
                return process
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server on port {port} did not come up")
        time.sleep(0.05)


def measure(port: int, wait: int, calls: int, folder: Path) -> list[float]:
    """Microseconds per ``audit.log`` call, one per call."""
    app = Flask("durability", instance_path=str(folder / "instance"))
    audit = FlaskAudit(
        app,
        AUDIT_REDIS_URL=f"redis://127.0.0.1:{port}/0",
        AUDIT_DATABASE_URL=f"sqlite:///{folder}/audit.db",
        AUDIT_REDIS_WAIT_REPLICAS=wait,
        AUDIT_MAX_QUEUE_LENGTH=10_000_000,
        AUDIT_TESTING=False,
    )
    audit.runtime(app).store.create_schema()
    times: list[float] = []
    with app.test_request_context("/keys", method="POST", headers={"X-User-ID": "7"}):
        for _ in range(calls // 10):  # warm up: connections, scripts
            audit.log("api_key_created", resource_type="api_key", resource_id="k1")
        for _ in range(calls):
            started = time.perf_counter()
            audit.log("api_key_created", resource_type="api_key", resource_id="k1")
            times.append((time.perf_counter() - started) * 1e6)
    counts = audit.runtime(app).write_path.counts._unsent
    if counts.get("unreplicated") or counts.get("write_through"):
        raise RuntimeError(f"pushes fell back to the database: {dict(counts)}")
    return times


def run_setup(setup: tuple, calls: int) -> list[float]:
    _label, with_replica, wait, appendonly, fsync = setup
    folder = Path(tempfile.mkdtemp(prefix="audit-durability-"))
    servers: list[subprocess.Popen] = []
    try:
        master = spare_port()
        servers.append(start_server(folder / "master", master, appendonly, fsync, None))
        if with_replica:
            servers.append(start_server(folder / "replica", spare_port(), appendonly, fsync, master))
        return measure(master, wait, calls, folder)
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float]]] = {setup[0]: [] for setup in SETUPS}
    for _ in range(args.rounds):
        for setup in SETUPS:
            times = sorted(run_setup(setup, args.calls))
            results[setup[0]].append(
                (statistics.median(times), times[int(len(times) * 0.99)], sum(times) / len(times))
            )
    base = statistics.median(r[0] for r in results[SETUPS[0][0]])
    print(f"audit.log, direct mode, one thread, {args.calls} calls, median of {args.rounds} rounds\n")
    print("| set-up | median µs | p99 µs | mean µs | median vs master alone |")
    print("|---|---:|---:|---:|---:|")
    for label, rounds in results.items():
        median = statistics.median(r[0] for r in rounds)
        p99 = statistics.median(r[1] for r in rounds)
        mean = statistics.median(r[2] for r in rounds)
        print(f"| {label} | {median:,.0f} | {p99:,.0f} | {mean:,.0f} | {median - base:+,.0f} µs |")


if __name__ == "__main__":
    main()
