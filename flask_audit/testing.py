"""Testing an app that audits: events go to memory, and tests assert on them.

With ``AUDIT_TESTING`` (by default, whenever the app's ``TESTING`` is on) ``audit.log``,
``audit.critical`` and ``@audited`` record events in memory only: no Redis, no database, no
thread, no file. ``capture(app)`` yields the events recorded inside it::

    with capture(app) as events:
        client.post("/api/v1/keys", json={"name": "ci"})
    events.assert_logged("api_key_created", user_id="42")

The pytest plugin (``flask_audit.pytest_plugin``, installed with the package) gives the same as a
fixture, ``audit_events``, for a project that defines an ``app`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Flask

from flask_audit.events.event import AuditEvent

__all__ = ["CapturedEvents", "capture"]


def stored_shape(event: AuditEvent) -> dict[str, Any]:
    """An event as the database stores it and the API shows it (without the row id)."""
    data = event.to_row()
    data["event_id"] = str(data["event_id"])
    data["created_at"] = data["created_at"].isoformat()
    return data


class CapturedEvents(Sequence[dict[str, Any]]):
    """The events recorded while a ``capture`` block runs (and, after it, those it recorded),
    oldest first, as dicts in the stored shape. Live: what the block logs shows at once."""

    def __init__(self, recorder: list[AuditEvent], start: int) -> None:
        self._recorder = recorder
        self._start = start
        self._end: int | None = None

    def _events(self) -> list[dict[str, Any]]:
        return [stored_shape(e) for e in self._recorder[self._start : self._end]]

    def __len__(self) -> int:
        return len(self._events())

    def __getitem__(self, index: Any) -> Any:
        return self._events()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._events())

    def __repr__(self) -> str:
        return f"CapturedEvents({self._events()!r})"

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self if event["event_type"] == event_type]

    def assert_logged(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """The one event of ``event_type`` whose fields equal ``fields``; AssertionError naming what
        was recorded otherwise (none matched, or several did)."""
        matches = [e for e in self.of_type(event_type) if all(e.get(k) == v for k, v in fields.items())]
        if len(matches) == 1:
            return matches[0]
        wanted = ", ".join([repr(event_type), *(f"{k}={v!r}" for k, v in fields.items())])
        seen = "\n".join(
            f"  {e['event_type']} " + " ".join(f"{k}={e.get(k)!r}" for k in fields) for e in self
        )
        problem = "no event matches" if not matches else f"{len(matches)} events match"
        raise AssertionError(f"{problem} {wanted}; recorded:\n{seen or '  (nothing)'}")

    def assert_not_logged(self, event_type: str) -> None:
        found = self.of_type(event_type)
        if found:
            raise AssertionError(f"{len(found)} {event_type!r} event(s) recorded, none expected")


@contextmanager
def capture(app: Flask) -> Iterator[CapturedEvents]:
    """Record in memory, for the duration of the block, the events ``app`` logs; yields them
    (filled in as the block runs). Works whether or not AUDIT_TESTING is on: outside testing
    mode the events are recorded instead of sent while the block runs."""
    runtime = app.extensions["audit"].runtime(app)
    was = runtime.recorder
    recorder = was if was is not None else []
    events = CapturedEvents(recorder, len(recorder))
    runtime.recorder = recorder
    try:
        yield events
    finally:
        events._end = len(recorder)
        runtime.recorder = was
