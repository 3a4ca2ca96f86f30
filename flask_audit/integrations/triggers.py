"""Trigger mode (PostgreSQL): a row trigger records every change to the outbox, whatever wrote
it (the ORM, a bulk ``update()``, raw SQL), in the same transaction as the change."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from flask_audit.integrations.outbox import OUTBOX_TABLE

#: the request's fields a session passes to the trigger as ``flask_audit.<name>`` settings
CONTEXT_FIELDS = ("user_id", "ip_address", "user_agent", "request_id", "tenant_id")
FUNCTION = "flask_audit_capture"
TRIGGER = "flask_audit_capture"

_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  excluded text[] := string_to_array(TG_ARGV[2], ',');
  masked text[] := string_to_array(TG_ARGV[3], ',');
  old_row jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
  new_row jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
  changes jsonb := '{{}}';
  k text;
  before jsonb;
  after jsonb;
  verb text := CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated' ELSE 'deleted' END;
  entry jsonb;
BEGIN
  FOR k IN SELECT jsonb_object_keys(coalesce(new_row, old_row)) LOOP
    CONTINUE WHEN k = ANY(excluded);
    before := old_row -> k;
    after := new_row -> k;
    CONTINUE WHEN TG_OP = 'UPDATE' AND before IS NOT DISTINCT FROM after;
    CONTINUE WHEN TG_OP = 'INSERT' AND after = 'null'::jsonb;
    CONTINUE WHEN TG_OP = 'DELETE' AND before = 'null'::jsonb;
    IF k = ANY(masked) THEN
      changes := changes || jsonb_build_object(k, jsonb_build_array('[MASKED]', '[MASKED]'));
    ELSE
      changes := changes || jsonb_build_object(k, jsonb_build_array(before, after));
    END IF;
  END LOOP;
  IF TG_OP = 'UPDATE' AND changes = '{{}}'::jsonb THEN
    RETURN NULL;
  END IF;
  entry := jsonb_build_object(
    'v', 1,
    'event_id', gen_random_uuid()::text,
    'created_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
    'event_type', TG_ARGV[0] || '_' || verb,
    'event_category', 'info',
    'outcome', 'success',
    'resource_type', TG_TABLE_NAME,
    'resource_id', coalesce(new_row, old_row) ->> TG_ARGV[1],
    'metadata', jsonb_build_object('changes', changes, 'via', 'trigger'));
  {{context}}
  INSERT INTO {OUTBOX_TABLE} (entry) VALUES (entry::text);
  RETURN NULL;
END
$fn$
"""
_CONTEXT = "\n  ".join(
    f"entry := entry || jsonb_strip_nulls(jsonb_build_object('{name}',"
    f" nullif(current_setting('flask_audit.{name}', true), '')));"
    for name in CONTEXT_FIELDS
)
FUNCTION_SQL = _FUNCTION_SQL.replace("{context}", _CONTEXT)


def install_trigger(
    conn: sa.Connection, table: str, name: str, primary_key: str, exclude: Iterable[str], mask: Iterable[str]
) -> None:
    """(Re)create the function and ``table``'s trigger; idempotent."""
    args = ", ".join(
        _literal(conn, v) for v in (name, primary_key, ",".join(sorted(exclude)), ",".join(sorted(mask)))
    )
    quoted = conn.dialect.identifier_preparer.quote(table)
    conn.exec_driver_sql(FUNCTION_SQL)
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quoted}")
    conn.exec_driver_sql(
        f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {quoted}"
        f" FOR EACH ROW EXECUTE FUNCTION {FUNCTION}({args})"
    )


def _literal(conn: sa.Connection, value: str) -> str:
    return (
        sa.literal(value, sa.String())
        .compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        .string
    )
