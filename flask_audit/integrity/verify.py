"""Walking the chain of seals and every row under them; what ``flask audit verify`` reports.

Per seal: its seq follows the previous one, it names the previous seal's hash, its own hash is
right, its MAC is the signing key's, and its leaves give its root. Per row in a seal's range: its
leaf is the seal's; a leaf without its row is a deleted row (unless a later checkpoint purged rows
that old); a row without a leaf was inserted afterwards. Rows above the last seal are counted as
not yet sealed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from flask_audit.integrity import seals
from flask_audit.integrity.canonical import (
    CanonicalRow,
    canonical_function,
    count_after,
    fetch,
    micros,
    rows_between,
)
from flask_audit.integrity.merkle import root
from flask_audit.integrity.seals import CHECKPOINT, GENESIS, Seal, Signer
from flask_audit.storage.store import AuditStore


@dataclass(frozen=True)
class Problem:
    #: row_changed, row_deleted, row_inserted, seal_changed, seal_missing, chain_broken,
    #: seal_forged, seal_unknown_key, seal_unsigned
    kind: str
    seal: int | None
    detail: str
    event_id: str | None = None
    row_id: int | None = None


@dataclass
class Report:
    rows: int = 0
    seals: int = 0
    unsigned: int = 0
    unsealed_rows: int = 0
    last_seq: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        text = f"{self.rows} rows in {self.seals} seals verified"
        if self.unsigned:
            text += f" ({self.unsigned} seals unsigned: no AUDIT_SIGNING_KEY when they were made)"
        if self.unsealed_rows:
            text += f"; {self.unsealed_rows} rows not sealed yet"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "seals": self.seals,
            "unsigned_seals": self.unsigned,
            "unsealed_rows": self.unsealed_rows,
            "last_seq": self.last_seq,
            "problems": [asdict(p) for p in self.problems],
        }


def verify(
    store: AuditStore,
    signer: Signer,
    *,
    since: str | None = None,
    until: str | None = None,
    from_seq: int | None = None,
    progress: Callable[[int], object] | None = None,
) -> Report:
    """Verify every seal (or those sealed between ``since`` and ``until``, ISO text, or from seal
    ``from_seq`` on; anchored by the seal before them) and the rows they cover."""
    report = Report()
    seals.create_table(store)
    previous = seals.before(store, from_seq) if from_seq is not None else _anchor(store, since)
    checkpoints = _checkpoints(store)
    signed_seen = False
    to_canonical = canonical_function(store.is_postgres)
    # One thread fetches the next seal's rows (its own connection; the driver lets go of the GIL
    # while it waits) while this one checks the current seal's: the database and Python overlap.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-verify-fetch") as pool:

        def prefetch(seal: Seal | None) -> Future[list[Any]] | None:
            if seal is None or seal.kind == CHECKPOINT:
                return None
            if not store.is_postgres:  # SQLite: one connection (an in-memory database has no other)
                done: Future[list[Any]] = Future()
                done.set_result(fetch(store, seal.first_row_id - 1, seal.last_row_id))
                return done
            return pool.submit(fetch, store, seal.first_row_id - 1, seal.last_row_id)

        upcoming = seals.walk(store, (previous.seq + 1) if previous else 0, until)
        seal = next(upcoming, None)
        records = prefetch(seal)
        try:
            while seal is not None:
                following = next(upcoming, None)
                following_records = prefetch(following)
                report.seals += 1
                report.last_seq = seal.seq
                signed_seen = _check_seal(seal, previous, signer, report, signed_seen)
                if records is not None:
                    purged = max((c.purged_before or "" for c in checkpoints if c.seq > seal.seq), default="")
                    rows = map(to_canonical, records.result())
                    _check_rows(rows, seal, purged, report, progress)
                previous, seal, records = seal, following, following_records
        finally:
            if store.is_postgres:
                pool.submit(store.database.close).result()  # the fetching thread's own connection
    if since is None and until is None and from_seq is None:
        last_sealed = previous.last_row_id if previous else 0
        report.unsealed_rows = count_after(store, last_sealed)
        first_sealed = first.first_row_id if (first := seals.first(store)) else last_sealed + 1
        for row in rows_between(store, -(2**62), first_sealed - 1):
            report.problems.append(
                Problem(
                    "row_inserted",
                    None,
                    f"row {row.row_id} ({row.event_id}) is not covered by any seal",
                    row.event_id,
                    row.row_id,
                )
            )
    return report


def _anchor(store: AuditStore, since: str | None) -> Seal | None:
    """The last seal before the window: trusted as the start of the chain checked."""
    if since is None:
        return None
    p = store.database.param
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT min(seq) FROM {seals.SEALS_TABLE} WHERE sealed_at >= {p}", (since,)
        ).fetchone()
    first = row[0] if row and row[0] is not None else None
    if first is None:  # nothing sealed since: the window is empty, anchored at the latest seal
        return seals.latest(store)
    return seals.before(store, int(first))


def _checkpoints(store: AuditStore) -> list[Seal]:
    p = store.database.param
    with store.translate():
        rows = store.database.execute_sql(
            f"SELECT {seals.COLUMNS} FROM {seals.SEALS_TABLE} WHERE kind = {p}", (CHECKPOINT,)
        ).fetchall()
    return [seals._seal(row) for row in rows]


def _check_seal(seal: Seal, previous: Seal | None, signer: Signer, report: Report, signed_seen: bool) -> bool:
    def problem(kind: str, detail: str) -> None:
        report.problems.append(Problem(kind, seal.seq, f"seal {seal.seq} {detail}"))

    expected_seq = previous.seq + 1 if previous else 1
    if seal.seq != expected_seq:
        problem("seal_missing", f"follows seal {expected_seq - 1}: seals are missing")
    if seal.prev_hash != (previous.hash if previous else GENESIS):
        problem("chain_broken", "does not name the previous seal's hash")
    if seal.computed_hash() != seal.hash:
        problem("seal_changed", "was changed after it was made")
    signature = signer.check(seal)
    if signature == "unsigned":
        report.unsigned += 1
        if signed_seen:
            problem("seal_unsigned", "is unsigned, after signed seals")
    elif signature == "unknown key":
        problem("seal_unknown_key", f"is signed by key {seal.key_id}, which is not configured")
    elif signature == "forged":
        problem("seal_forged", "has a MAC that the key does not give")
    if seal.kind != CHECKPOINT:
        hashes = seal.leaf_hashes()
        if len(hashes) != seal.row_count or root(hashes).hex() != seal.root:
            problem("seal_changed", "has leaves that do not give its root")
    return signed_seen or signature == "signed"


_sha256 = hashlib.sha256


def _check_rows(
    rows: Iterable[CanonicalRow],
    seal: Seal,
    purged_before: str,
    report: Report,
    progress: Callable[[int], object] | None,
) -> None:
    expected = seal.by_row()
    cutoff_us = _micros_of(purged_before) if purged_before else None
    problems = report.problems
    seen = verified = 0
    pop = expected.pop
    for row in rows:
        seen += 1
        leaf = pop(row.row_id, None)
        if leaf is None:
            problems.append(
                Problem(
                    "row_inserted",
                    seal.seq,
                    f"row {row.row_id} ({row.event_id}) is in seal {seal.seq}'s range but not in the seal",
                    row.event_id,
                    row.row_id,
                )
            )
        elif leaf[2] != _sha256(b"\x00" + row.canonical).digest():  # the leaf hash, inlined
            sealed_id = str(uuid.UUID(bytes=leaf[1]))
            now_holds = "" if row.event_id == sealed_id else f", now holding {row.event_id}"
            problems.append(
                Problem(
                    "row_changed",
                    seal.seq,
                    f"row {row.row_id} ({sealed_id}) differs from what seal {seal.seq} sealed{now_holds}",
                    sealed_id,
                    row.row_id,
                )
            )
        else:
            verified += 1
    report.rows += verified
    for row_id, (created_us, event, _hash) in expected.items():
        if cutoff_us is not None and created_us < cutoff_us:
            continue  # purged by retention, as a later checkpoint records
        sealed_id = str(uuid.UUID(bytes=event))
        problems.append(
            Problem(
                "row_deleted",
                seal.seq,
                f"row {row_id} ({sealed_id}) sealed in seal {seal.seq} is gone",
                sealed_id,
                row_id,
            )
        )
    if progress is not None:
        progress(seen)


def _micros_of(text: str) -> int:
    return micros(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc))
