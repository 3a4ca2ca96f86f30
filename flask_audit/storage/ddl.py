"""Names in the database, and statements shared by the schema and its migrations."""

from __future__ import annotations

TABLE_NAME = "audit_logs"
#: the table that records which migrations were applied, and when
MIGRATIONS_TABLE = "audit_schema_migrations"
#: the latest critical events without a scan: a partial index holding critical rows only
CRITICAL_INDEX = f"{TABLE_NAME}_critical_created_at"
CRITICAL_INDEX_COLUMNS = "(created_at)"
CRITICAL_INDEX_WHERE = "event_category = 'critical'"
