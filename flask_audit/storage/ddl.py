"""Names in the database, and statements shared by the schema and its migrations."""

from __future__ import annotations

TABLE_NAME = "audit_logs"
#: the table that records which migrations were applied, and when
MIGRATIONS_TABLE = "audit_schema_migrations"
#: the latest critical events without a scan: a partial index holding critical rows only
CRITICAL_INDEX = f"{TABLE_NAME}_critical_created_at"
CRITICAL_INDEX_COLUMNS = "(created_at)"
CRITICAL_INDEX_WHERE = "event_category = 'critical'"


def index_name(suffix: str) -> str:
    """The name of a declared secondary index (``schema.INDEXES``); Peewee names the unpredicated
    ones of a plain table ``auditlog_<columns>``, as release 0.1.0 did."""
    return f"{TABLE_NAME}_{suffix}"


def partial_index_sql(suffix: str, columns: tuple[str, ...], where: str) -> str:
    """CREATE INDEX for a declared index with a predicate (Peewee's Meta cannot say WHERE)."""
    columns_sql = ", ".join(columns)
    return f"CREATE INDEX IF NOT EXISTS {index_name(suffix)} ON {TABLE_NAME} ({columns_sql}) WHERE {where}"


#: the seals: one row per sealed range of audit_logs (or per retention checkpoint), chained
SEALS_TABLE = "audit_seals"
#: the advisory lock inserts share and the sealer takes alone (see flask_audit.integrity.sealer)
INSERT_LOCK_KEY = 0x41554453  # "AUDS"


def seals_table_sql(postgres: bool) -> str:
    blob = "BYTEA" if postgres else "BLOB"
    return (
        f"CREATE TABLE IF NOT EXISTS {SEALS_TABLE} ("
        " seq BIGINT PRIMARY KEY,"
        " kind VARCHAR(16) NOT NULL,"
        " first_row_id BIGINT NOT NULL,"
        " last_row_id BIGINT NOT NULL,"
        " row_count INTEGER NOT NULL,"
        " root CHAR(64) NOT NULL,"
        f" leaves {blob},"
        " purged_before VARCHAR(40),"
        " prev_hash CHAR(64) NOT NULL,"
        " sealed_at VARCHAR(40) NOT NULL,"
        " key_id VARCHAR(16),"
        " mac CHAR(64),"
        " hash CHAR(64) NOT NULL)"
    )


#: where each log stream keeps how far it has delivered (restart-safe, one row per stream)
STREAM_CURSORS_TABLE = "audit_stream_cursors"
#: the advisory lock the one sender of a stream holds while it sends
STREAM_LOCK_KEY = INSERT_LOCK_KEY + 2


def stream_cursors_table_sql() -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {STREAM_CURSORS_TABLE} ("
        " name VARCHAR(64) PRIMARY KEY,"
        " last_id BIGINT NOT NULL,"
        " delivered BIGINT NOT NULL,"
        " updated_at VARCHAR(40) NOT NULL)"
    )


#: whether this PostgreSQL can compress with lz4 (version 14 or later, built with it); no row before 14
LZ4_AVAILABLE_SQL = "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
#: how the seal leaves' column compresses new values: 'l' lz4, 'p' pglz, '' the server's default
SEAL_LEAVES_COMPRESSION_SQL = (
    f"SELECT attcompression::text FROM pg_attribute"
    f" WHERE attrelid = '{SEALS_TABLE}'::regclass AND attname = 'leaves'"
)
SEAL_LEAVES_LZ4_SQL = f"ALTER TABLE {SEALS_TABLE} ALTER COLUMN leaves SET COMPRESSION lz4"


def seals_index_sql() -> str:
    """Finding the seal of a row (proofs) without a scan."""
    return f"CREATE INDEX IF NOT EXISTS {SEALS_TABLE}_last_row_id ON {SEALS_TABLE} (last_row_id)"
