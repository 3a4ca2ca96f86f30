"""What a wake-up costs on this machine, on one core and across cores: the price of every wait on
the request path (a direct push sleeps until Redis answers; a gthread worker's threads hand the
GIL to each other), and the reason behind examples/gunicorn_pinned.py.

Two exchanges, each timed over ``--n`` round trips, free to run anywhere, on one core, and held to
two different cores:
- a byte sent over a socket pair to another process and back (as a push and Redis's answer);
- a lock handed to another thread of the same process and back (as the GIL between a gthread
  worker's threads).

Each row gives the round trip's wall time and the CPU it cost (both ends: the process's own CPU
for the threads, the two processes' for the socket pair), medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import print_table

#: (label, the caller's cores, the other end's cores): None leaves the scheduler free
PLACEMENTS = (("anywhere", None, None), ("one core", {0}, {0}), ("two cores", {0}, {1}))


def children_cpu() -> float:
    """CPU seconds of this process's reaped children: the echo's share of a socket round trip."""
    usage = os.times()
    return usage.children_user + usage.children_system


def socket_pair(n: int, mine: set[int] | None, theirs: set[int] | None) -> tuple[float, float]:
    """Round trips of one byte to a forked echo process: (wall µs, CPU µs of both) per trip."""
    here, there = socket.socketpair()
    before_children = children_cpu()
    pid = os.fork()
    if pid == 0:  # the echo: answers until the caller closes its end
        here.close()
        if theirs is not None:
            os.sched_setaffinity(0, theirs)
        while data := there.recv(64):
            there.send(data)
        os._exit(0)
    there.close()
    wall, cpu = _timed(lambda: _ping(here, n), mine)
    here.close()
    os.waitpid(pid, 0)
    return wall / n * 1e6, (cpu + children_cpu() - before_children) / n * 1e6


def _ping(sock: socket.socket, n: int) -> None:
    for _ in range(n):
        sock.send(b"x")
        sock.recv(64)


def lock_handoff(n: int, mine: set[int] | None, theirs: set[int] | None) -> tuple[float, float]:
    """Round trips of a handed-over lock between two threads: (wall µs, process CPU µs) per trip."""
    to_them, to_me = threading.Lock(), threading.Lock()
    to_them.acquire()
    to_me.acquire()

    def other() -> None:
        if theirs is not None:
            os.sched_setaffinity(threading.get_native_id(), theirs)
        for _ in range(n):
            to_them.acquire()
            to_me.release()

    thread = threading.Thread(target=other)
    thread.start()

    def exchange() -> None:
        for _ in range(n):
            to_them.release()
            to_me.acquire()

    wall, cpu = _timed(exchange, mine, process_wide=True)
    thread.join()
    return wall / n * 1e6, cpu / n * 1e6


def _timed(
    work: Callable[[], None], cores: set[int] | None, process_wide: bool = False
) -> tuple[float, float]:
    """Run ``work`` on this thread, held to ``cores`` meanwhile: (wall s, CPU s)."""
    allowed = os.sched_getaffinity(0)
    if cores is not None:
        os.sched_setaffinity(threading.get_native_id(), cores)
    clock = time.process_time if process_wide else time.thread_time
    try:
        wall, cpu = time.perf_counter(), clock()
        work()
        return time.perf_counter() - wall, clock() - cpu
    finally:
        os.sched_setaffinity(threading.get_native_id(), allowed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="round trips a run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        print("needs two cores", file=sys.stderr)
        return 2
    rows = []
    for name, exchange in (("socket pair, two processes", socket_pair), ("lock, two threads", lock_handoff)):
        for label, mine, theirs in PLACEMENTS:
            runs = [exchange(args.n, mine, theirs) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            rows.append([name, label, f"{wall:.1f}", f"{cpu:.1f}"])
    print(f"\n{args.n:,} round trips a run, medians of {args.runs} runs, on {os.cpu_count()} cores\n")
    print_table(["exchange", "where", "wall µs a round trip", "CPU µs a round trip"], rows, align="llrr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
