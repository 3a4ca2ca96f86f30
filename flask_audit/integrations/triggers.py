"""Trigger mode (PostgreSQL): statement triggers record every change to the outbox, whatever
wrote it (the ORM, a bulk ``update()``, raw SQL), in the same transaction as the change.

They are statement-level triggers over transition tables: one ``INSERT ... SELECT`` per
statement builds the records of all its rows, so a bulk statement of 10,000 rows costs one
set-based insert, not 10,000 function calls. An update pairs old and new rows by primary key; a
row whose key itself changed is recorded twice, as the old key's values going away and the new
key's arriving, so that no change escapes.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from flask_audit.integrations.outbox import OUTBOX_TABLE

#: the request's fields a session passes to the triggers
CONTEXT_FIELDS = ("user_id", "ip_address", "user_agent", "request_id", "tenant_id")
TRIGGER = "flask_audit_capture"

#: the setting a session fills with those fields, as one JSON object, at each transaction
CONTEXT_SETTING = "flask_audit.context"
_CONTEXT = (
    "jsonb_strip_nulls(jsonb_build_object("
    + ", ".join(f"'{name}', ctx ->> '{name}'" for name in CONTEXT_FIELDS)
    + "))"
)

#: {field: [before, after]} of two row images (either may be NULL), without excluded fields,
#: masked ones as [MASKED]; an insert or a delete leaves out the fields that are null
FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION flask_audit_changes(o jsonb, n jsonb, excluded text[], masked text[])
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $fn$
  SELECT coalesce(jsonb_object_agg(k, CASE WHEN k = ANY(masked)
           THEN '["[MASKED]", "[MASKED]"]'::jsonb
           ELSE jsonb_build_array(o -> k, n -> k) END), '{{}}'::jsonb)
  FROM jsonb_object_keys(coalesce(n, o)) AS k
  WHERE k <> ALL(excluded)
    AND (o -> k) IS DISTINCT FROM (n -> k)
    AND NOT (o IS NULL AND n -> k = 'null'::jsonb)
    AND NOT (n IS NULL AND o -> k = 'null'::jsonb)
$fn$;

CREATE OR REPLACE FUNCTION flask_audit_record() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  name text := TG_ARGV[0];
  pk text := TG_ARGV[1];
  excluded text[] := string_to_array(TG_ARGV[2], ',');
  masked text[] := string_to_array(TG_ARGV[3], ',');
  ctx jsonb := coalesce(nullif(current_setting('{CONTEXT_SETTING}', true), ''), '{{}}')::jsonb;
  context jsonb := {_CONTEXT};
  stamp text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"');
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO {OUTBOX_TABLE} (entry)
    SELECT flask_audit_entry(name, 'created', TG_TABLE_NAME, r ->> pk,
                             flask_audit_changes(NULL, r, excluded, masked), stamp, context)
    FROM (SELECT to_jsonb(t) AS r FROM new_rows t) AS s;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO {OUTBOX_TABLE} (entry)
    SELECT flask_audit_entry(name, 'deleted', TG_TABLE_NAME, r ->> pk,
                             flask_audit_changes(r, NULL, excluded, masked), stamp, context)
    FROM (SELECT to_jsonb(t) AS r FROM old_rows t) AS s;
  ELSE
    INSERT INTO {OUTBOX_TABLE} (entry)
    SELECT flask_audit_entry(name, 'updated', TG_TABLE_NAME, coalesce(n ->> pk, o ->> pk), c, stamp, context)
    FROM (
      SELECT o.r AS o, n.r AS n, flask_audit_changes(o.r, n.r, excluded, masked) AS c
      FROM (SELECT to_jsonb(t) AS r FROM old_rows t) AS o
      FULL JOIN (SELECT to_jsonb(t) AS r FROM new_rows t) AS n ON (o.r ->> pk) = (n.r ->> pk)
    ) AS pairs
    WHERE c <> '{{}}'::jsonb;
  END IF;
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION flask_audit_entry(
  name text, verb text, tbl text, key text, changes jsonb, stamp text, context jsonb
) RETURNS text LANGUAGE sql VOLATILE AS $fn$
  SELECT (jsonb_build_object(
    'v', 1,
    'event_id', gen_random_uuid()::text,
    'created_at', stamp,
    'event_type', name || '_' || verb,
    'event_category', 'info',
    'outcome', 'success',
    'resource_type', tbl,
    'resource_id', key,
    'metadata', jsonb_build_object('changes', changes, 'via', 'trigger')) || context)::text
$fn$;
"""

_EVENTS = (
    ("insert", "INSERT", "NEW TABLE AS new_rows"),
    ("update", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    ("delete", "DELETE", "OLD TABLE AS old_rows"),
)


def install_trigger(
    conn: sa.Connection, table: str, name: str, primary_key: str, exclude: Iterable[str], mask: Iterable[str]
) -> None:
    """(Re)create the functions and ``table``'s three statement triggers; idempotent."""
    args = ", ".join(
        _literal(conn, v) for v in (name, primary_key, ",".join(sorted(exclude)), ",".join(sorted(mask)))
    )
    quoted = conn.dialect.identifier_preparer.quote(table)
    conn.exec_driver_sql(FUNCTIONS_SQL)
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quoted}")  # the row trigger of before
    for suffix, operation, transition in _EVENTS:
        trigger = f"{TRIGGER}_{suffix}"
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON {quoted}")
        conn.exec_driver_sql(
            f"CREATE TRIGGER {trigger} AFTER {operation} ON {quoted} REFERENCING {transition}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION flask_audit_record({args})"
        )


def _literal(conn: sa.Connection, value: str) -> str:
    return (
        sa.literal(value, sa.String())
        .compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        .string
    )
