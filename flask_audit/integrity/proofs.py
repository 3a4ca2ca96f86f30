"""Per-event proofs: one row, its leaf, the Merkle audit path to its seal's root, the seal and
its place in the chain; and the offline check of such a proof (``flask audit verify --proof``).

A proof is self-contained JSON (``FORMAT``). Anyone can check its hash part without the package:
the README shows a twenty-line verifier. The MAC needs the signing key.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from flask_audit.events import schema
from flask_audit.integrity import seals
from flask_audit.integrity.canonical import rows_between
from flask_audit.integrity.merkle import audit_path, leaf_hash, root_from_path
from flask_audit.integrity.seals import Seal, Signer
from flask_audit.storage.ddl import SEALS_TABLE
from flask_audit.storage.store import AuditStore

FORMAT = "flask-audit-proof/1"


def build(store: AuditStore, row_id: int) -> dict[str, Any] | None:
    """The proof of row ``row_id``; None while no seal covers it (it is sealed within one seal
    interval)."""
    seal = seals.covering(store, row_id)
    if seal is None:
        return None
    rows = list(rows_between(store, row_id - 1, row_id))
    index = next((i for i, held in enumerate(seal.by_row()) if held == row_id), None)
    if not rows or index is None:
        return None
    row = rows[0]
    hashes = seal.leaf_hashes()
    following = _next_seal(store, seal.seq)
    return {
        "format": FORMAT,
        "event_id": row.event_id,
        "row_id": row_id,
        "canonical": row.canonical.decode(),
        "fields": list(schema.NAMES),
        "leaf_hash": leaf_hash(row.canonical).hex(),
        "leaf_index": index,
        "tree_size": len(hashes),
        "audit_path": [h.hex() for h in audit_path(hashes, index)],
        "seal": {**seal.summary(), "body": seal.body().decode()},
        "next_seal": None if following is None else {"seq": following[0], "prev_hash": following[1]},
    }


def _next_seal(store: AuditStore, seq: int) -> tuple[int, str] | None:
    p = store.database.param
    with store.translate():
        row = store.database.execute_sql(
            f"SELECT seq, prev_hash FROM {SEALS_TABLE} WHERE seq = {p}", (seq + 1,)
        ).fetchone()
    return (int(row[0]), row[1].strip()) if row else None


def check(proof: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Check a proof on its own: the leaf is the canonical row's, the path leads to the seal's
    root, the seal's hash is its body's, the MAC is the key's (when a key is configured), and the
    next seal names this one. Returns {"ok", "event_id", "seal", "signature", "problems"}."""
    problems: list[str] = []
    if proof.get("format") != FORMAT:
        problems.append(f"unknown format {proof.get('format')!r}")
    canonical = proof["canonical"].encode()
    leaf = leaf_hash(canonical)
    values = orjson.loads(canonical)
    if values[schema.NAMES.index("event_id")] != proof["event_id"]:
        problems.append("the canonical row is not this event's")
    if leaf.hex() != proof["leaf_hash"]:
        problems.append("the leaf hash is not the canonical row's")
    info = proof["seal"]
    seal = Seal(
        **{name: info[name] for name in seals.COLUMNS.replace(" ", "").split(",") if name != "leaves"},
        leaves=None,
    )
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    reached = root_from_path(leaf, int(proof["leaf_index"]), int(proof["tree_size"]), path)
    if reached is None or reached.hex() != seal.root:
        problems.append("the audit path does not lead to the seal's root")
    if int(proof["tree_size"]) != seal.row_count:
        problems.append("the tree size is not the seal's row count")
    if hashlib.sha256(seal.body()).hexdigest() != seal.hash:
        problems.append("the seal's hash is not its body's")
    following = proof.get("next_seal")
    if following is not None and following["prev_hash"] != seal.hash:
        problems.append("the next seal does not name this seal")
    signature = (
        signer.check(seal) if signer.keys else ("unsigned" if seal.mac is None else "not checked: no key")
    )
    if signature in ("forged", "unknown key"):
        problems.append(f"the seal's MAC: {signature}")
    return {
        "ok": not problems,
        "event_id": proof["event_id"],
        "seal": seal.seq,
        "signature": signature,
        "problems": problems,
    }
