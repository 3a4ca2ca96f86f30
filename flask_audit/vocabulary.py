"""The event types an application declares: their names, default categories and meaning.

``audit.register_event_type("api_key_created", category="info", ...)`` adds one;
``audit.register_event_types(ORIGINAL_DESIGN)`` adds the original design's table. A registered
type's category is what ``audit.log`` uses when it is given none. With
``AUDIT_STRICT_EVENT_TYPES`` an unregistered type is refused; otherwise, once the application has
registered any type, each unregistered one is logged once as a warning (a typo shows up).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from flask_audit.errors import AuditValidationError
from flask_audit.events.event import CATEGORIES, check_event_type
from flask_audit.formats.ocsf import check_mapping

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventType:
    name: str
    category: str = "info"
    description: str = ""
    resource_type: str | None = None
    #: the OCSF class (and activity) of its events in OCSF exports and streams, e.g.
    #: ``"account_change:disable"``; None: API Activity, the activity read from the name
    ocsf: str | None = None


#: the original design's table of event types (shared/spec/original-design.md)
ORIGINAL_DESIGN: tuple[EventType, ...] = (
    EventType(
        "permanent_ban_applied",
        "critical",
        "An account was banned for good.",
        "account",
        "account_change:disable",
    ),
    EventType("api_key_created", "info", "An API key was created.", "api_key", "entity_management:create"),
    EventType("api_key_deleted", "info", "An API key was deleted.", "api_key", "entity_management:delete"),
    EventType(
        "api_key_rotated",
        "info",
        "An API key was replaced by a new one.",
        "api_key",
        "entity_management:update",
    ),
    EventType("usage_limit_reached", "warning", "An account used all of its quota.", "usage_quota"),
    EventType("usage_warning_80_percent", "warning", "An account used 80% of its quota.", "usage_quota"),
    EventType("usage_warning_90_percent", "warning", "An account used 90% of its quota.", "usage_quota"),
    EventType(
        "account_upgraded",
        "info",
        "An account moved to a higher plan.",
        "account",
        "entity_management:update",
    ),
)


class Vocabulary:
    """The registered event types of one FlaskAudit."""

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def register(self, event_type: EventType) -> EventType:
        """Add a type; registering the same one again is harmless, a different one is refused."""
        check_event_type(event_type.name)
        if event_type.category not in CATEGORIES:
            raise AuditValidationError("category", "must be one of info, warning, critical")
        if event_type.ocsf is not None:
            check_mapping(event_type.ocsf)
        known = self._types.get(event_type.name)
        if known is not None and known != event_type:
            raise AuditValidationError(
                "event_type", f"{event_type.name!r} is already registered differently ({known.category})"
            )
        self._types[event_type.name] = event_type
        return event_type

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[EventType]:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._types)

    def get(self, name: str) -> EventType | None:
        return self._types.get(name)

    def category_for(self, name: str, given: str | None, strict: bool) -> str:
        """The category to log ``name`` with: the one given, else the registered one, else info.
        Refuses an unregistered type when ``strict``; warns about it once otherwise."""
        known = self._types.get(name)
        if known is None and strict:
            raise AuditValidationError(
                "event_type",
                f"{name!r} is not a registered event type (register it with audit.register_event_type)",
            )
        if known is None and self._types:
            with self._lock:
                first_time = name not in self._warned
                self._warned.add(name)
            if first_time:
                logger.warning("audit event type %r is not registered (a typo?)", name)
        if given is not None:
            return given
        return known.category if known is not None else "info"

    def extend(self, types: Iterable[EventType]) -> None:
        for event_type in types:
            self.register(event_type)
