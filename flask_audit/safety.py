"""Errors the request path swallows: logged, counted, and visible to tests.

The host app must never break because auditing is unhealthy. Tests register a listener (see
tests/conftest.py) so that a swallowed error fails the test that caused it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

#: callables told about each swallowed error (tests use this)
listeners: list[Callable[[BaseException, str], None]] = []
#: seconds between two log lines about the same kind of failure
LOG_EVERY = 30.0
_last_logged: dict[str, float] = {}


def swallowed(exc: BaseException, where: str) -> None:
    """Record an error that was caught so the caller could carry on."""
    key = f"{where}:{type(exc).__name__}"
    now = time.monotonic()
    if now - _last_logged.get(key, -LOG_EVERY) >= LOG_EVERY:
        _last_logged[key] = now
        logger.warning("flask_audit: %s failed, falling back: %s", where, exc)
    for listener in listeners:
        listener(exc, where)
