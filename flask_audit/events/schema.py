"""The event's fields, declared once.

Validation and repair, the queue entry, the row, the Peewee model, the DDL (plain and
partitioned, PostgreSQL and SQLite), the COPY encoder, the query API's filters and serialiser and
the export's columns and options are all derived from ``FIELDS``. Adding a field means adding it
here and a migration in ``flask_audit/storage/migrations.py`` (and, being public API, a keyword
of ``FlaskAudit.log``: a test compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass

#: who fills a field: the extension itself, the application's code, or possibly a client
SYSTEM, CODE, CLIENT = "system", "code", "client"
#: the categories of the original design, in rising severity
CATEGORIES = ("info", "warning", "critical")
#: how the action ended: done, attempted and failed, or refused to the caller
OUTCOMES = ("success", "failure", "denied")


@dataclass(frozen=True)
class Field:
    """One column of ``audit_logs`` and one key of a queue entry."""

    name: str
    #: "uuid", "timestamp", "text", "ip" (text holding an address) or "json"
    type: str
    #: characters kept; longer values are refused (CODE) or cut (CLIENT)
    max_length: int | None = None
    nullable: bool = True
    source: str = CLIENT
    #: CLIENT text that may hold tab, newline and carriage return
    multiline: bool = False
    #: stored as unbounded TEXT although values are cut to ``max_length``
    unbounded_column: bool = False
    #: an equality filter of the query API and of ``flask audit export``
    filter: bool = False
    #: the value a queue entry that lacks it gets (entries of older releases)
    default: str | None = None

    def sql_type(self, postgres: bool) -> str:
        if self.type == "uuid":
            return "UUID" if postgres else "VARCHAR(40)"
        if self.type == "timestamp":
            return "TIMESTAMPTZ" if postgres else "VARCHAR(40)"
        if self.type == "json":
            return "JSONB" if postgres else "TEXT"
        if self.unbounded_column or self.max_length is None:
            return "TEXT"
        return f"VARCHAR({self.max_length})"

    def column_sql(self, postgres: bool) -> str:
        return f"{self.name} {self.sql_type(postgres)}{'' if self.nullable else ' NOT NULL'}"


FIELDS: tuple[Field, ...] = (
    Field("event_id", "uuid", nullable=False, source=SYSTEM),
    Field("created_at", "timestamp", nullable=False, source=SYSTEM),
    Field("event_type", "text", 100, nullable=False, source=CODE, filter=True),
    Field("event_category", "text", 16, nullable=False, source=CODE, filter=True, default="info"),
    Field("user_id", "text", 255, filter=True),
    Field("resource_type", "text", 100, filter=True),
    Field("resource_id", "text", 255, filter=True),
    Field("description", "text", 2000, multiline=True, unbounded_column=True),
    Field("metadata", "json"),
    Field("ip_address", "ip", 45),
    Field("user_agent", "text", 512),
    Field("request_id", "text", 128, filter=True),
    # added by migration 4 (so nullable in the table; every new event has an outcome)
    Field("outcome", "text", 16, source=CODE, filter=True, default="success"),
    Field("tenant_id", "text", 255, filter=True),
)
BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
#: the text fields a client may fill: repaired and cut, never refused for their content
CLIENT_TEXT: tuple[Field, ...] = tuple(f for f in FIELDS if f.source == CLIENT and f.type in ("text", "ip"))
#: text fields that may be absent (NULL) in a row or an entry
OPTIONAL_TEXT: tuple[str, ...] = tuple(f.name for f in FIELDS if f.type in ("text", "ip") and f.nullable)
MAX_LENGTHS: dict[str, int] = {f.name: f.max_length for f in FIELDS if f.max_length is not None}
#: equality filters of the query API and the export, in declaration order
FILTERS: tuple[str, ...] = tuple(f.name for f in FIELDS if f.filter)

#: the table's secondary indexes: (name suffix, columns, predicate or None). Each costs the drain
#: about a tenth of its speed, so request_id, a needle looked up together with a time range, has
#: none. An index looked up by an optional key holds only the rows that have one: the query API
#: filters by equality with a value, never by NULL, and most apps leave the tenant (and many
#: events the user) empty, whose entries the drain would otherwise maintain for nothing.
INDEXES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("by_user", ("user_id", "created_at"), "user_id IS NOT NULL"),
    ("event_type_created_at", ("event_type", "created_at"), None),
    ("by_resource", ("resource_type", "resource_id"), "resource_type IS NOT NULL"),
    ("created_at", ("created_at",), None),
    ("by_tenant", ("tenant_id", "created_at"), "tenant_id IS NOT NULL"),
)
