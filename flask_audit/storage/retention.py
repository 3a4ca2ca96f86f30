"""Expiring old rows: chunked deletes, or whole partitions dropped when the table is partitioned."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_audit.storage.partitions import drop_partitions_before
from flask_audit.storage.store import AuditStore


@dataclass
class PurgeResult:
    rows_deleted: int = 0
    partitions_dropped: list[str] = field(default_factory=list)


def expire(
    store: AuditStore, cutoff: datetime, chunk: int = 5000, progress: Callable[[int], Any] | None = None
) -> PurgeResult:
    """Remove what is older than ``cutoff``. Partitioned: drop every month that ends by then (a
    month is kept until all of it has expired) and delete old rows of the default partition."""
    if store.partitioned:
        dropped, rows = drop_partitions_before(store, cutoff)
        return PurgeResult(rows_deleted=rows, partitions_dropped=dropped)
    return PurgeResult(rows_deleted=store.purge_before(cutoff, chunk=chunk, progress=progress))
