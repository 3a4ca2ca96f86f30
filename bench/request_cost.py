"""What one `audit.log` adds to a Flask request, measured in one process: the app of
`bench/load.py` called through WSGI in a loop, the plain route against the audited one, in direct
and buffered mode against the real Redis, and the route that waits for a bare Redis PING
instead of logging (the load bench's floor). Steadier than the load bench (here the plain route
moved by 2 µs between runs, the audited ones by 4, against 20 under wrk), so it is the one to
tell a small change of the request path from noise; the load bench says what that is worth with
the whole stack on the machine.

``python bench/request_cost.py [--n 20000] [--rounds 5] [--against REV]``: every figure is the
median of the rounds, each round a fresh process per mode; ``--against REV`` runs the same
loop on revision REV's package (from ``git archive``) in alternate processes, so a drifting
machine affects both alike. Nothing drains the queue here: the entries go to a key prefix of
their own, removed at the end.

``--instructions`` counts instead of timing: each mode runs under valgrind's callgrind twice,
with loops of ``--n`` and of three times ``--n`` requests, and the difference over the extra
requests is the instructions a request costs, start-up and warm-up cancelled out. The count
does not follow the machine's speed: two runs of the same code a quarter of an hour apart gave
the plain route 407,309 and 407,460 instructions and the buffered one 516,459 and 512,555 (this
mode's first version, which warmed its two processes up unequally and so counted a tenth too
much, alike in both runs), while the plain route's time moved between 116 and 142 µs in that
hour. So it tells a change of the
request path's own work apart from the hour it was measured in; the wait for Redis and what the
kernel does are not in it. The buffer is flushed only when full (every 1,000 events)
in this mode, because under valgrind a timer's flush would fall every few requests.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for bench.*; appended, so that a PYTHONPATH's flask_audit comes first

from bench.revisions import package_of

REDIS_URL = os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
#: (label, route, extra configuration)
MODES = (
    ("plain route", "/plain", {}),
    ("audit.log, direct push", "/audited", {}),
    ("audit.log, AUDIT_BUFFERED", "/audited", {"AUDIT_BUFFERED": "true"}),
    # no event: the route waits for one PING, so direct mode's figure less this one is what
    # audit.log adds to a round trip that any confirmed event must make
    ("floor: a bare Redis PING, no event", "/round-trip", {}),
)


def child(route: str, n: int, once: bool = False, warmup: int | None = None) -> None:
    """Run in a process of its own: print the µs per request of ``route`` (best of 5 loops, or
    one loop when ``once``, for the instruction count, after ``warmup`` requests: the same in
    both of its processes, so that the difference holds only the extra loop)."""
    from bench.load_app import create_app  # with whichever flask_audit PYTHONPATH gives first

    app = create_app()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": route,
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "wrk/4.2",
    }

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        assert status.startswith("200"), status

    def request() -> None:
        for _ in app({**environ, "wsgi.input": io.BytesIO(b"")}, start_response):
            pass

    for _ in range(n // 10 if warmup is None else warmup):  # connections, caches, the buffer's thread
        request()
    loops = []
    for _ in range(1 if once else 5):
        start = time.perf_counter_ns()
        for _ in range(n):
            request()
        loops.append((time.perf_counter_ns() - start) / n / 1000)
    print(json.dumps(min(loops)))


#: what callgrind prints of the instructions it counted
COLLECTED = re.compile(rb"Collected : (\d+)")


def measure(
    route: str, extra: dict[str, str], n: int, package: Path | None, *, count: bool = False, warmup: int = 0
) -> float:
    """One process's figure (µs per request, or with ``count`` the instructions of the whole
    process); its entries (nothing drains them) go to a prefix of their own, removed after, so
    that no run meets the cap the runs before it filled."""
    prefix = f"request-cost-{uuid.uuid4().hex[:8]}:"
    env = dict(
        os.environ,
        AUDIT_REDIS_URL=REDIS_URL,
        AUDIT_KEY_PREFIX=prefix,
        AUDIT_MAX_QUEUE_LENGTH="1000000",  # nothing drains here: never overflow into the database
        AUDIT_DATABASE_URL=f"sqlite:///{tempfile.gettempdir()}/audit-request-cost.db",
        **extra,
    )
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(package), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--child", route, "--n", str(n)]
    if count:
        # the same hash seed in every run; the buffer flushes when full, never on its timer
        env.update(PYTHONHASHSEED="0", AUDIT_BUFFER_FLUSH_MS="3600000")
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command, "--once"]
        command += ["--warmup", str(warmup)]
    try:
        done = subprocess.run(
            command, env=env, cwd=package or ROOT, capture_output=True, check=True, timeout=1800
        )
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    if count:
        found = COLLECTED.search(done.stderr)
        if found is None:
            raise RuntimeError(f"callgrind printed no count: {done.stderr[-500:]!r}")
        return float(found.group(1))
    return float(done.stdout.decode().strip().splitlines()[-1])


def instructions(route: str, extra: dict[str, str], n: int, package: Path | None) -> float:
    """Instructions per request: two processes, one running twice the requests of the other
    more, so that start-up and warm-up cancel out."""
    short = measure(route, extra, n, package, count=True, warmup=n // 10)
    long = measure(route, extra, 3 * n, package, count=True, warmup=n // 10)
    return (long - short) / (2 * n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="requests per loop")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", help="a git revision to run beside this tree, alternating")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind instead of timing (--n 1000 is plenty)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, once=args.once, warmup=args.warmup)
        return 0
    if args.instructions and shutil.which("valgrind") is None:
        print("--instructions needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    trees: dict[str, Path | None] = {"this tree": None}
    if args.against:
        trees = {args.against: package_of(args.against), **trees}
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(1 if args.instructions else args.rounds):
        for tree, package in trees.items():
            for label, route, extra in MODES:
                if args.instructions:
                    value = instructions(route, extra, args.n, package)
                else:
                    value = measure(route, extra, args.n, package)
                samples.setdefault((tree, label), []).append(value)
    if args.instructions:
        print(
            f"\ninstructions per request through WSGI (callgrind; loops of {args.n:,} and"
            f" {3 * args.n:,} requests, the difference over {2 * args.n:,})\n"
        )
        unit, digits = "instructions per request", 0
    else:
        print(
            f"\n{args.n:,} requests per loop through WSGI, best of 5 loops per process, median of"
            f" {args.rounds} processes per row, µs per request\n"
        )
        unit, digits = "µs per request", 1
    print(f"| tree | mode | {unit} | audit.log's share |")
    print("|---|---|---:|---:|")
    for tree in trees:
        plain = statistics.median(samples[(tree, MODES[0][0])])
        for label, _, _ in MODES:
            value = statistics.median(samples[(tree, label)])
            share = "" if label == MODES[0][0] else f"+{value - plain:,.{digits}f}"
            print(f"| {tree} | {label} | {value:,.{digits}f} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
