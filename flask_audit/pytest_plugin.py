"""The pytest plugin (entry point ``pytest11``): the ``audit_events`` fixture.

It uses the project's own ``app`` fixture, as pytest-flask does, and yields the events that app
records during the test (see ``flask_audit.testing``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_audit.testing import CapturedEvents, capture


@pytest.fixture
def audit_events(request: pytest.FixtureRequest) -> Iterator[CapturedEvents]:
    """The audit events the ``app`` fixture's app records during this test."""
    app = request.getfixturevalue("app")
    with capture(app) as events:
        yield events
