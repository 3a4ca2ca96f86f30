"""The cost of auditing in an app's own test suite: the flaskr-like suite in tests/flaskr, run
with the extension (AUDIT_TESTING, on with TESTING) and without it, alternating. Prints a table.

    python bench/testing_mode.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def redis_servers() -> int:
    return sum(1 for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server"))


def run(audited: bool) -> tuple[float, str]:
    env = dict(os.environ, FLASKR_AUDITED="1" if audited else "0")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/flaskr"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stdout[-2000:])
    return elapsed, result.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    servers_before = redis_servers()
    times: dict[bool, list[float]] = {True: [], False: []}
    summary = ""
    for round_ in range(args.rounds):
        for audited in (round_ % 2 == 0, round_ % 2 == 1):
            elapsed, summary = run(audited)
            times[audited].append(elapsed)
    without, with_ = statistics.median(times[False]), statistics.median(times[True])
    print(f"the flaskr-like suite ({summary.split(' in ')[0]}), {args.rounds} runs each, alternating")
    print("| suite | median wall time (pytest process) | |")
    print("|---|---|---|")
    print(f"| without flask-audit | {without:.2f} s | |")
    print(f"| with flask-audit (AUDIT_TESTING) | {with_:.2f} s | {with_ / without:.2f}x |")
    print(f"redis-server processes before: {servers_before}, after: {redis_servers()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
