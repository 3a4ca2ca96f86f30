"""Group commit: concurrent ``audit.log`` calls of one process share one round trip to Redis.

Under a threaded server (gunicorn gthread, waitress, any WSGI server with threads), while one
thread waits for Redis, others reach ``audit.log``. Instead of each opening a round trip of its
own, they queue their entries; the thread in flight, once answered, hands the lead to the first
of them, which pushes everything queued meanwhile in one call. Each caller still returns only
once its own entries are confirmed (or refused by the cap, or failed): the direct mode's promise
is unchanged, and a lone caller (a sync worker) pushes at once, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask_audit.errors import ReplicationShortfall


class _Slot:
    """One caller's entries, and what became of them."""

    __slots__ = ("_done", "accepted", "entries", "error", "lead")

    def __init__(self, entries: list[bytes]) -> None:
        self.entries = entries
        self.accepted = 0
        self.error: BaseException | None = None
        self.lead = False
        self._done: threading.Lock | None = None

    def release(self) -> None:
        self._done.release()  # type: ignore[union-attr]

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        return self.accepted


class GroupCommit:
    """Wraps ``push`` (entries -> how many the queue accepted) for concurrent callers."""

    def __init__(self, push: Callable[[list[bytes]], int]) -> None:
        self._push = push
        self._lock = threading.Lock()
        self._waiting: list[_Slot] = []
        self._leading = False

    def push(self, entries: list[bytes]) -> int:
        """Push ``entries`` with whatever other threads are pushing; returns how many of them the
        queue accepted. Raises what the push raised (a ``ReplicationShortfall`` counts only this
        caller's accepted entries)."""
        with self._lock:
            alone = not self._leading
            self._leading = True
            if not alone:
                slot = _Slot(entries)
                self._waiting.append(slot)
                slot._done = threading.Lock()
                slot._done.acquire()
        if alone:  # nobody in flight (always, on a sync worker): push at once, no slot to fill
            try:
                return self._push(entries)
            finally:
                self._hand_over()
        slot._done.acquire()  # type: ignore[union-attr]
        if not slot.lead:
            return slot.result()
        return self._lead(slot)

    def _hand_over(self) -> None:
        """Pass the lead to the first caller that queued meanwhile, or give it up."""
        with self._lock:
            successor = self._waiting[0] if self._waiting else None
            if successor is None:
                self._leading = False
            else:
                successor.lead = True
        if successor is not None:
            successor.release()

    def _lead(self, own: _Slot) -> int:
        with self._lock:
            group, self._waiting = self._waiting, []
        entries = group[0].entries if len(group) == 1 else [e for slot in group for e in slot.entries]
        try:
            accepted, error = self._push(entries), None
        except BaseException as exc:  # each caller gets it, as if it had pushed alone
            accepted, error = 0, exc
        offset = 0
        for slot in group:
            count = len(slot.entries)
            if isinstance(error, ReplicationShortfall):
                mine = max(0, min(count, error.accepted - offset))
                slot.error = ReplicationShortfall(mine, error.replicas, error.wanted)
            elif error is not None:
                slot.error = error
            else:
                slot.accepted = max(0, min(count, accepted - offset))
            offset += count
        for slot in group:
            if slot is not own:
                slot.release()
        self._hand_over()
        return own.result()
