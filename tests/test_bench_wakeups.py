"""The wake-up bench's exchanges: each round trip really crosses to the other end, and a placement
on one core really holds both ends there (a process held to one core cannot use more CPU than
the wall time that passed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.wakeups import lock_handoff, socket_pair
from tests.processes import ROOT, children_of

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")


def test_threads_held_to_one_core_use_no_more_cpu_than_the_time_that_passed():
    wall, cpu = lock_handoff(2_000, {0}, {0})
    assert 0 < cpu <= wall * 1.05, (wall, cpu)


def test_a_socket_round_trip_counts_both_processes_and_leaves_no_child():
    before = children_of(os.getpid())
    wall, cpu = socket_pair(2_000, {0}, {1})
    assert wall > 0 and cpu > 0, (wall, cpu)
    assert children_of(os.getpid()) <= before  # the echo was reaped


def test_a_placement_is_given_back_after_the_run():
    before = os.sched_getaffinity(0)
    lock_handoff(500, {0}, {1})
    assert os.sched_getaffinity(0) == before


def test_make_bench_wakeups_prints_a_row_for_each_exchange_and_placement():
    """The script as `make bench-wakeups` runs it, with few round trips."""
    done = subprocess.run(
        [sys.executable, "bench/wakeups.py", "--n", "200", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line.split("|")[1:-1]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and "µs" not in line
    ]
    assert [(row[0].strip(), row[1].strip()) for row in rows] == [
        (exchange, where)
        for exchange in ("socket pair, two processes", "lock, two threads")
        for where in ("anywhere", "one core", "two cores")
    ]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in rows)
