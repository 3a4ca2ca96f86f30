"""Group commit: concurrent pushes share round trips, and each caller learns what became of its
own entries (accepted, refused by the cap, failed, short of replicas)."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from flask_audit.errors import ReplicationShortfall
from flask_audit.ingest.group_commit import GroupCommit


class SlowQueue:
    """A queue whose push takes a while (a round trip), with a cap."""

    def __init__(self, cap: int = 10**9, fail: BaseException | None = None) -> None:
        self.cap = cap
        self.fail = fail
        self.items: list[bytes] = []
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def push(self, entries: list[bytes]) -> int:
        time.sleep(0.002)
        with self.lock:
            self.calls.append(len(entries))
            if self.fail is not None:
                raise self.fail
            room = max(0, self.cap - len(self.items))
            taken = entries[:room]
            self.items.extend(taken)
            return len(taken)


def run_threads(group: GroupCommit, threads: int, each: int) -> dict[str, list]:
    results: dict[str, list] = {}
    start = threading.Barrier(threads)

    def caller(name: str) -> None:
        start.wait()
        got = []
        for i in range(each):
            try:
                got.append(group.push([f"{name}-{i}".encode()]))
            except Exception as exc:  # recorded for the assertions
                got.append(exc)
        results[name] = got

    workers = [threading.Thread(target=caller, args=(f"t{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not any(worker.is_alive() for worker in workers), "a caller never returned"
    return results


def test_a_lone_caller_pushes_at_once_and_gets_its_count():
    queue = SlowQueue()
    group = GroupCommit(queue.push)
    assert group.push([b"a", b"b"]) == 2
    assert queue.calls == [2]


def test_a_lone_caller_whose_push_failed_gets_the_error_and_gives_up_the_lead():
    queue = SlowQueue(fail=redis.ConnectionError("gone"))
    group = GroupCommit(queue.push)
    with pytest.raises(redis.ConnectionError):
        group.push([b"a"])
    queue.fail = None
    assert group.push([b"b"]) == 1  # the next caller leads: nobody is left waiting for the lead
    assert queue.items == [b"b"]


def test_concurrent_callers_share_round_trips_and_each_gets_its_own_answer():
    queue = SlowQueue()
    group = GroupCommit(queue.push)
    results = run_threads(group, threads=8, each=50)
    assert all(got == [1] * 50 for got in results.values())
    assert sorted(queue.items) == sorted(f"t{n}-{i}".encode() for n in range(8) for i in range(50))
    assert sum(queue.calls) == 400
    assert len(queue.calls) < 400 / 2  # shared: at least two entries a round trip on average
    assert max(queue.calls) > 1


def test_what_the_cap_refuses_is_refused_to_the_callers_whose_entries_did_not_fit():
    queue = SlowQueue(cap=100)
    group = GroupCommit(queue.push)
    results = run_threads(group, threads=4, each=50)
    answers = [a for got in results.values() for a in got]
    assert answers.count(1) == 100 and answers.count(0) == 100
    assert len(queue.items) == 100


def test_a_failed_push_fails_every_caller_of_its_group():
    error = redis.ConnectionError("gone")
    group = GroupCommit(SlowQueue(fail=error).push)
    results = run_threads(group, threads=4, each=10)
    assert all(answer is error for got in results.values() for answer in got)


def test_the_split_of_a_shortfall_follows_the_order_of_the_group():
    """Deterministic: the first caller's push is held until two more have queued behind it."""
    release = threading.Event()
    calls: list[int] = []

    def push(entries: list[bytes]) -> int:
        calls.append(len(entries))
        if len(calls) == 1:
            release.wait(5)
            return len(entries)
        raise ReplicationShortfall(accepted=3, replicas=0, wanted=1)

    group = GroupCommit(push)
    outcomes: dict[str, object] = {}

    def caller(name, entries):
        try:
            outcomes[name] = group.push(entries)
        except ReplicationShortfall as exc:
            outcomes[name] = exc.accepted

    first = threading.Thread(target=caller, args=("first", [b"x"]))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=caller, args=("second", [b"a", b"b"]))
    second.start()
    time.sleep(0.05)
    third = threading.Thread(target=caller, args=("third", [b"c", b"d"]))
    third.start()
    time.sleep(0.05)
    release.set()
    for t in (first, second, third):
        t.join(5)
    assert calls == [1, 4]  # the two that waited went together
    assert outcomes == {"first": 1, "second": 2, "third": 1}
