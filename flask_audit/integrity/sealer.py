"""Sealing committed rows, one linear chain whatever the number of workers.

Workers insert concurrently, so ids are not committed in order: a transaction holding id 105 may
commit after the one holding id 110. Every insert transaction on PostgreSQL therefore shares an
advisory lock (``storage.pgcopy``); the sealer takes it alone for an instant, reads the highest id,
and lets go. At that instant no insert is in flight, so every row up to that id has committed and
every later row gets a higher id: sealing up to it never leaves a row behind. (SQLite commits one
writer at a time, in id order.) Only one sealer runs at a time (the leading clock, and a second
advisory lock on PostgreSQL); the seal's seq is the primary key, so the chain cannot fork.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from flask_audit.integrity import seals
from flask_audit.integrity.canonical import canonical_function, fetch, max_row_id, timestamp_text
from flask_audit.integrity.merkle import EMPTY_ROOT, leaf_hashes, root
from flask_audit.integrity.seals import CHECKPOINT, GENESIS, ROWS, Seal, Signer
from flask_audit.storage.ddl import INSERT_LOCK_KEY
from flask_audit.storage.store import AuditStore

logger = logging.getLogger(__name__)

#: rows per seal at most: a proof recomputes the tree of one seal (about 2,000 hashes at 1,024)
SEAL_MAX_ROWS = 1024
#: seconds one sealing run lasts at most, so that a run after a long pause stays short
RUN_SECONDS = 3.0
#: seals written per transaction (one commit, one fsync)
SEALS_PER_COMMIT = 64
#: the advisory lock only one sealer holds
SEALER_LOCK_KEY = INSERT_LOCK_KEY + 1


def committed_watermark(store: AuditStore) -> int:
    """The highest row id below which every row has committed."""
    if not store.is_postgres:
        return max_row_id(store)
    with store.translate(), store.database.atomic():
        store.database.execute_sql(f"SELECT pg_advisory_xact_lock({INSERT_LOCK_KEY})")
        return max_row_id(store)


def _sealer_lock(store: AuditStore, *, wait: bool = False) -> Callable[[], None] | None:
    """Take the sealer's lock; returns its release, or None when another sealer holds it (and
    ``wait`` is false)."""
    if not store.is_postgres:
        return lambda: None
    with store.translate():
        if wait:
            store.database.execute_sql(f"SELECT pg_advisory_lock({SEALER_LOCK_KEY})")
        elif not store.database.execute_sql(f"SELECT pg_try_advisory_lock({SEALER_LOCK_KEY})").fetchone()[0]:
            return None

    def release() -> None:
        with store.translate():
            store.database.execute_sql(f"SELECT pg_advisory_unlock({SEALER_LOCK_KEY})")

    return release


def _next(previous: Seal | None) -> tuple[int, str, int]:
    """(seq, prev_hash, last sealed row id) for the seal after ``previous``."""
    if previous is None:
        return 1, GENESIS, 0
    return previous.seq + 1, previous.hash, previous.last_row_id


def seal_pending(store: AuditStore, signer: Signer, *, seconds: float = RUN_SECONDS) -> int:
    """Seal the committed rows not sealed yet, for ``seconds`` at most (a run after a long pause
    stays short; the next run goes on); returns how many rows were sealed."""
    release = _sealer_lock(store)
    if release is None:
        return 0
    try:
        up_to = committed_watermark(store)
        deadline = time.monotonic() + seconds
        made: list[Seal] = []
        sealed = 0
        previous = seals.latest(store)
        to_canonical = canonical_function(store.is_postgres)
        while time.monotonic() < deadline:
            seq, prev_hash, after = _next(previous)
            if after >= up_to:
                break
            # at most SEAL_MAX_ROWS ids per seal: an index range whatever the table's statistics
            last = min(up_to, after + SEAL_MAX_ROWS)
            rows = list(map(to_canonical, fetch(store, after, last)))
            hashes = leaf_hashes([row.canonical for row in rows])
            previous = signer.seal(
                Seal(
                    seq=seq,
                    kind=ROWS,
                    first_row_id=after + 1,
                    last_row_id=last,
                    row_count=len(rows),
                    root=root(hashes).hex(),
                    leaves=seals.pack(rows, hashes),
                    purged_before=None,
                    prev_hash=prev_hash,
                    sealed_at=timestamp_text(datetime.now(timezone.utc)),
                )
            )
            made.append(previous)
            sealed += len(rows)
            if len(made) == SEALS_PER_COMMIT:
                seals.insert(store, *made)
                made.clear()
        if made:
            seals.insert(store, *made)
        return sealed
    finally:
        release()


def checkpoint(store: AuditStore, signer: Signer, purged_before: datetime) -> Seal:
    """Record, in the chain, that rows created before ``purged_before`` are to be purged. Called
    before the purge: a checkpoint whose purge then failed only excuses rows that are still
    there, while a purge recorded after the fact would look like tampering in between."""
    release = _sealer_lock(store, wait=True)
    assert release is not None
    try:
        previous = seals.latest(store)
        seq, prev_hash, after = _next(previous)
        seal = signer.seal(
            Seal(
                seq=seq,
                kind=CHECKPOINT,
                first_row_id=after,
                last_row_id=after,
                row_count=0,
                root=EMPTY_ROOT.hex(),
                leaves=None,
                purged_before=timestamp_text(purged_before),
                prev_hash=prev_hash,
                sealed_at=timestamp_text(datetime.now(timezone.utc)),
            )
        )
        seals.insert(store, seal)
        return seal
    finally:
        release()
