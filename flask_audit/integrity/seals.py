"""Seals: what each one holds, how it is hashed, chained and signed, and the table they live in.

A seal covers the rows whose ids lie in ``first_row_id .. last_row_id``. It keeps, per row, the
row id, its created_at, its event_id and its leaf hash (so that verification can name a changed or
deleted row), and the Merkle root over those leaves. Its hash covers every field but the leaves
(which the root covers) and the previous seal's hash, so the seals form one chain; with a signing
key, an HMAC-SHA256 of that hash under the key authenticates it. A checkpoint is a seal with no
rows that records a retention purge: rows created before ``purged_before`` may be gone.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import orjson

from flask_audit.integrity.canonical import CanonicalRow
from flask_audit.storage.ddl import SEALS_TABLE, seals_index_sql, seals_table_sql
from flask_audit.storage.store import AuditStore

#: the previous hash of the first seal
GENESIS = "0" * 64
ROWS, CHECKPOINT = "rows", "checkpoint"
#: one leaf record: row id, created_at (µs since the epoch, UTC), event_id (16 bytes), leaf hash
LEAF = struct.Struct(">qq16s32s")
COLUMNS = (
    "seq, kind, first_row_id, last_row_id, row_count, root, leaves, purged_before, prev_hash,"
    " sealed_at, key_id, mac, hash"
)


@dataclass(frozen=True)
class Seal:
    seq: int
    kind: str
    first_row_id: int
    last_row_id: int
    row_count: int
    root: str
    leaves: bytes | None
    purged_before: str | None
    prev_hash: str
    sealed_at: str
    key_id: str | None = None
    mac: str | None = None
    hash: str = ""

    def body(self) -> bytes:
        """What the seal's hash is computed over: a JSON array of its fields, leaves excepted."""
        return orjson.dumps(
            [
                self.seq,
                self.kind,
                self.first_row_id,
                self.last_row_id,
                self.row_count,
                self.root,
                self.purged_before,
                self.prev_hash,
                self.sealed_at,
            ]
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()

    def leaf_hashes(self) -> list[bytes]:
        """The leaf hashes alone, in tree order (what a root or a proof needs)."""
        blob = bytes(self.leaves or b"")
        size = LEAF.size
        return [blob[i + size - 32 : i + size] for i in range(0, len(blob), size)]

    def by_row(self) -> dict[int, tuple[int, bytes, bytes]]:
        """row id -> (created_at µs, event_id as 16 bytes, leaf hash): verification's lookup."""
        return {
            row_id: (created_us, event, leaf)
            for row_id, created_us, event, leaf in LEAF.iter_unpack(self.leaves or b"")
        }

    def summary(self) -> dict[str, object]:
        """The seal as a proof or a report shows it (without its leaves)."""
        return {
            "seq": self.seq,
            "kind": self.kind,
            "first_row_id": self.first_row_id,
            "last_row_id": self.last_row_id,
            "row_count": self.row_count,
            "root": self.root,
            "purged_before": self.purged_before,
            "prev_hash": self.prev_hash,
            "sealed_at": self.sealed_at,
            "key_id": self.key_id,
            "mac": self.mac,
            "hash": self.hash,
        }


def pack(rows: Sequence[CanonicalRow], hashes: Sequence[bytes]) -> bytes:
    """The leaf records of ``rows`` (their leaf hashes in ``hashes``), in order, as a seal keeps them."""
    event_ids = uuids_bytes([row.event_id for row in rows])
    return b"".join(map(LEAF.pack, [r.row_id for r in rows], [r.created_us for r in rows], event_ids, hashes))


def uuids_bytes(texts: list[str]) -> list[bytes]:
    """``uuid_bytes`` of each: hyphenated UUIDs, as PostgreSQL writes them, are converted in one
    ``bytes.fromhex`` over them all (a call per leaf was a tenth of sealing); anything else one by
    one."""
    count = len(texts)
    joined = "".join(texts)
    dashes = "-" * count
    if (
        len(joined) == 36 * count
        and joined.count("-") == 4 * count
        and joined[8::36] == joined[13::36] == joined[18::36] == joined[23::36] == dashes
    ):
        try:
            raw = bytes.fromhex(joined.replace("-", ""))
        except ValueError:
            raw = b""
        if len(raw) == 16 * count:  # fromhex skips spaces: a short result is not a UUID each
            return [raw[i : i + 16] for i in range(0, 16 * count, 16)]
    return [uuid_bytes(text) for text in texts]


def uuid_bytes(text: str) -> bytes:
    """The 16 bytes of a UUID in its hyphenated form, without building a ``uuid.UUID`` (0.9 ->
    0.3 µs a leaf; 7% of the clock's samples under load went there); anything else goes through
    ``uuid.UUID``, which refuses what it refuses."""
    raw = bytes.fromhex(text.replace("-", "")) if len(text) == 36 and text.count("-") == 4 else b""
    return raw if len(raw) == 16 else uuid.UUID(text).bytes


def key_id(key: str) -> str:
    """A short public name of a signing key, stored with each seal it signs."""
    return hashlib.sha256(b"flask-audit seal key:" + key.encode()).hexdigest()[:16]


def mac(key: str, seal_hash: str) -> str:
    return hmac.new(key.encode(), seal_hash.encode("ascii"), hashlib.sha256).hexdigest()


class Signer:
    """The current signing key (signs new seals) and every key that verifies, by key id."""

    def __init__(self, key: str | None, old_keys: tuple[str, ...] | None = None) -> None:
        self.key = key
        self.keys = {key_id(k): k for k in (*(old_keys or ()), *((key,) if key else ()))}

    def seal(self, seal: Seal) -> Seal:
        """``seal`` with its hash, and its key id and MAC when there is a key."""
        digest = seal.computed_hash()
        if self.key is None:
            return replace(seal, hash=digest, key_id=None, mac=None)
        return replace(seal, hash=digest, key_id=key_id(self.key), mac=mac(self.key, digest))

    def check(self, seal: Seal) -> str:
        """ "signed", "unsigned", "unknown key" or "forged" (a MAC the key does not give)."""
        if seal.mac is None and seal.key_id is None:
            return "unsigned"
        key = self.keys.get(seal.key_id or "")
        if key is None:
            return "unknown key"
        return "signed" if hmac.compare_digest(mac(key, seal.hash), seal.mac or "") else "forged"


# -- the table ------------------------------------------------------------------------------------


def create_table(store: AuditStore) -> None:
    with store.translate():
        store.database.execute_sql(seals_table_sql(store.is_postgres))
        store.database.execute_sql(seals_index_sql())


def _seal(record: tuple) -> Seal:
    values = list(record)
    if values[6] is not None:
        values[6] = bytes(values[6])
    values[5], values[8], values[12] = values[5].strip(), values[8].strip(), values[12].strip()
    if values[11] is not None:
        values[11] = values[11].strip()
    return Seal(*values)


def latest(store: AuditStore) -> Seal | None:
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT {COLUMNS} FROM {SEALS_TABLE} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    return _seal(row) if row else None


def insert(store: AuditStore, *new: Seal) -> None:
    """Add seals in one transaction (one commit for a run's seals); a second sealer racing for
    the same seq fails on the primary key."""
    p = store.database.param
    sql = f"INSERT INTO {SEALS_TABLE} ({COLUMNS}) VALUES ({', '.join([p] * 13)})"
    with store.translate(), store.database.atomic():
        cursor = store.database.cursor()
        cursor.executemany(
            sql,
            [
                (
                    seal.seq,
                    seal.kind,
                    seal.first_row_id,
                    seal.last_row_id,
                    seal.row_count,
                    seal.root,
                    seal.leaves,
                    seal.purged_before,
                    seal.prev_hash,
                    seal.sealed_at,
                    seal.key_id,
                    seal.mac,
                    seal.hash,
                )
                for seal in new
            ],
        )


def first(store: AuditStore) -> Seal | None:
    with store.translate():
        sql = f"SELECT {COLUMNS} FROM {SEALS_TABLE} ORDER BY seq LIMIT 1"
        row = store.database.execute_sql(sql).fetchone()
    return _seal(row) if row else None


def walk(store: AuditStore, from_seq: int = 0, until_sealed_at: str | None = None) -> Iterator[Seal]:
    """Seals with seq >= ``from_seq`` in seq order (up to a sealed_at, when given)."""
    p = store.database.param
    sql = f"SELECT {COLUMNS} FROM {SEALS_TABLE} WHERE seq >= {p}"
    params: list[object] = [from_seq]
    if until_sealed_at is not None:
        sql += f" AND sealed_at <= {p}"
        params.append(until_sealed_at)
    with store.translate():
        cursor = store.database.execute_sql(sql + " ORDER BY seq", params)
        while batch := cursor.fetchmany(200):
            for record in batch:
                yield _seal(record)


def covering(store: AuditStore, row_id: int) -> Seal | None:
    """The seal whose range holds ``row_id``."""
    p = store.database.param
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT {COLUMNS} FROM {SEALS_TABLE} WHERE kind = {p} AND last_row_id >= {p}"
            f" AND first_row_id <= {p} ORDER BY last_row_id LIMIT 1",
            (ROWS, row_id, row_id),
        ).fetchone()
    return _seal(row) if row else None


def before(store: AuditStore, seq: int) -> Seal | None:
    p = store.database.param
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT {COLUMNS} FROM {SEALS_TABLE} WHERE seq < {p} ORDER BY seq DESC LIMIT 1", (seq,)
        ).fetchone()
    return _seal(row) if row else None
