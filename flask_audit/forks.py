"""How many forks separate this process from the one that imported flask_audit, kept without a
system call: the request path asks on every call whether it runs in a forked child (gunicorn
forks its workers, ``--preload`` after the app is built), and ``os.getpid()`` is a system call
each time (glibc no longer caches it), the only one ``audit.log`` made in buffered mode."""

from __future__ import annotations

import os

#: bumped in every child right after a fork; compare it with the value seen when state was made
generation = 0


def _after_fork_in_child() -> None:
    global generation
    generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)
