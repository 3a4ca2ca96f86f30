"""Buffered mode (AUDIT_BUFFERED): audit.log hands the validated event to an in-process buffer,
and a background thread serialises what has gathered and pushes it to Redis in one round trip.

The loss window on a hard crash (SIGKILL, power) is what the buffer holds: at most
AUDIT_BUFFER_FLUSH_MS of events, and never more than AUDIT_BUFFER_MAX_EVENTS. A normal exit
(SIGTERM under gunicorn, sys.exit, the end of a script) flushes it through ``atexit``.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import deque
from collections.abc import Callable

from . import safety
from .event import AuditEvent

#: entries pushed per Lua call when a flush is large
PUSH_CHUNK = 1000


class EventBuffer:
    """Events waiting to be pushed; ``deliver`` takes a list of queue entries and never raises."""

    def __init__(self, deliver: Callable[[list[bytes]], None], flush_seconds: float, max_events: int) -> None:
        self.deliver = deliver
        self.flush_seconds = flush_seconds
        self.max_events = max_events
        self._events: deque[AuditEvent] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pid = 0
        self._closed = False
        atexit.register(self.close)

    def add(self, event: AuditEvent) -> None:
        """Take one event; when the buffer is full the flush happens now, on the caller's thread."""
        if self._pid != os.getpid():
            self._start()  # first use, or first use after a fork (gunicorn --preload)
        self._events.append(event)
        if len(self._events) >= self.max_events:
            self.flush()

    def flush(self) -> int:
        """Serialise and push everything buffered so far; returns how many events were handed on."""
        with self._lock:
            events, self._events = list(self._events), deque()
            for start in range(0, len(events), PUSH_CHUNK):
                self.deliver([event.to_entry() for event in events[start : start + PUSH_CHUNK]])
            return len(events)

    def pending(self) -> int:
        return len(self._events)

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
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
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
