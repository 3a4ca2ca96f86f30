"""gunicorn settings that hold each worker to a core of its own (``gunicorn -c
python:examples.gunicorn_pinned ...``).

On a virtual machine a thread woken on another core can cost several times one woken on its own
(`make bench-wakeups` on this project's 2-core CI machine: a lock handed between two threads and
back cost 54 µs of CPU across cores against 16 µs on one). A direct ``audit.log`` wakes its thread twice,
and a gthread worker hands the GIL between its threads on every request; held to one core, a
worker's threads wake where they slept. See the README's "Under load".

The master picks each new worker's core, the one with the fewest live workers among those it
may use itself, so a worker that is replaced takes the core its predecessor left; the worker
then holds itself to it. Start the master under ``taskset`` to choose the cores.
"""

from __future__ import annotations

import os
from typing import Any


def pre_fork(server: Any, worker: Any) -> None:
    """In the master, before the fork: the core the new worker will hold to."""
    cores = sorted(os.sched_getaffinity(0))
    taken = [getattr(other, "core", None) for other in server.WORKERS.values()]
    worker.core = min(cores, key=taken.count)


def post_fork(server: Any, worker: Any) -> None:
    """In the new worker: hold every thread it starts from now on to its core."""
    os.sched_setaffinity(0, {worker.core})
