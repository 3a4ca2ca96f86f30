"""``examples/gunicorn_pinned.py``, as the README tells a user to run it: gunicorn's workers each
hold to a core of their own, a worker killed outright is replaced on the core it left, and the
pinned workers serve requests whose events are pushed."""

from __future__ import annotations

import os
import signal

from tests.integration.test_end_to_end import http, web_answers
from tests.processes import children_of, gunicorn, listening_socket, wait_for

CONFIG = "python:examples.gunicorn_pinned"


def cores_of(pids: set[int]) -> dict[int, set[int]]:
    return {pid: os.sched_getaffinity(pid) for pid in pids}


def test_each_worker_holds_to_a_core_of_its_own_and_its_replacement_to_the_same(
    service_env, spawn, real_redis_client, key_prefix
):
    cores = sorted(os.sched_getaffinity(0))
    count = min(2, len(cores))
    sock = listening_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    command = gunicorn(sock, "examples.app:create_app()", "--workers", "2", "--config", CONFIG)
    web = spawn("web", command, service_env, pass_fds=(sock.fileno(),))
    sock.close()
    wait_for(lambda: web_answers(base), 30, "gunicorn to answer")
    wait_for(lambda: len(children_of(web.pid)) == 2, 30, "two workers")

    held = cores_of(children_of(web.pid))
    assert all(len(mask) == 1 for mask in held.values()), held
    assert set().union(*held.values()) == set(cores[:count]), held  # one core each, while there are two

    # the worker on the highest core: a replacement numbered by age would land on the first
    killed, its_core = max(held.items(), key=lambda item: max(item[1]))
    os.kill(killed, signal.SIGKILL)
    wait_for(
        lambda: len(children_of(web.pid) - set(held)) == 1 and len(children_of(web.pid)) == 2,
        30,
        "a replacement worker",
    )
    replacement = (children_of(web.pid) - set(held)).pop()
    assert os.sched_getaffinity(replacement) == its_core

    for i in range(20):
        status, _, _ = http("POST", base + "/api/v1/keys", {"name": f"k{i}"}, {"X-User-ID": "7"})
        assert status == 201, status
    assert real_redis_client.llen(key_prefix + "queue") == 20
    assert "falling back" not in web.output()
