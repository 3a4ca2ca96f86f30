"""Buffered mode (AUDIT_BUFFERED): audit.log hands the event's queue entry (serialised when the
event was built, so no flush can fail on one event's content) to an in-process buffer, and a
background thread pushes what has gathered to Redis in one round trip.

The loss window on a hard crash (SIGKILL, power) is what the buffer holds: at most
AUDIT_BUFFER_FLUSH_MS of events, and never more than AUDIT_BUFFER_MAX_EVENTS. A normal exit
(SIGTERM under gunicorn, sys.exit, the end of a script) flushes it through ``atexit``.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from collections.abc import Callable
from itertools import repeat, starmap

from flask_audit import forks, safety

#: entries pushed per Lua call when a flush is large
PUSH_CHUNK = 1000


class EventBuffer:
    """Events waiting to be pushed; ``deliver`` takes a list of queue entries and never raises."""

    def __init__(self, deliver: Callable[[list[bytes]], None], flush_seconds: float, max_events: int) -> None:
        self.deliver = deliver
        self.flush_seconds = flush_seconds
        self.max_events = max_events
        self._entries: deque[bytes] = deque()
        self._wake = threading.Event()
        #: held by one flush at a time, across its delivery
        self._lock = threading.Lock()
        #: the fork generation whose thread runs (none yet)
        self._generation = -1
        self._closed = False
        atexit.register(self.close)

    def add(self, entry: bytes) -> None:
        """Take one queue entry; when the buffer is full the flush happens now, on the caller's
        thread. No lock: ``deque.append`` is atomic, and a flush takes entries off the same deque
        one by one (``popleft``) instead of swapping it, so no entry can land in a buffer a flush
        has already taken. The lock this replaced was a fifth of this call."""
        if self._generation != forks.generation:
            self._start()  # first use, or first use after a fork (gunicorn --preload)
        entries = self._entries
        entries.append(entry)
        if len(entries) >= self.max_events:
            self.flush()

    def flush(self) -> int:
        """Push everything buffered so far; returns how many entries were handed on. Entries
        added meanwhile wait for the next flush."""
        with self._lock:
            buffered = self._entries  # only flushes take entries off it, under this lock
            entries = list(starmap(buffered.popleft, repeat((), len(buffered))))  # a loop in C
            for start in range(0, len(entries), PUSH_CHUNK):
                self.deliver(entries[start : start + PUSH_CHUNK])
            return len(entries)

    def pending(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Stop the thread and flush what is left (atexit)."""
        self._closed = True
        self._wake.set()
        try:
            self.flush()
        except Exception as exc:  # at exit there is nobody left to raise to
            safety.swallowed(exc, "buffer flush at exit")

    def _start(self) -> None:
        with self._lock:
            if self._generation == forks.generation:
                return
            self._generation = forks.generation
            self._closed = False
            threading.Thread(target=self._run, name="audit-buffer", daemon=True).start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # deliver() has its own fallbacks
                safety.swallowed(exc, "buffer flush")
