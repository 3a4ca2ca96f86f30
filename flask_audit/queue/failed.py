"""The failed list: events the database refused, kept for an operator to inspect and requeue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from flask_audit.config import AuditConfig


@dataclass
class FailedRecord:
    """One refused event: ``raw`` is the list entry, ``data`` its decoded fields."""

    raw: bytes
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data.get("id") or "")


class FailedList:
    def __init__(self, client: redis.Redis, config: AuditConfig) -> None:
        self.client = client
        self.key = config.failed_key
        self.queue_key = config.queue_key

    def records(self, limit: int | None = None) -> list[FailedRecord]:
        """The newest ``limit`` records (all when None), oldest first. The settle script LPUSHes,
        so the newest stand at the head of the list."""
        raws = self.client.lrange(self.key, 0, limit - 1 if limit else -1)
        records = []
        for raw in reversed(raws):
            try:
                data = orjson.loads(raw)
            except ValueError:
                data = {"error": "unreadable failure record", "entry": raw.decode(errors="replace")}
            records.append(FailedRecord(raw, data if isinstance(data, dict) else {"entry": str(data)}))
        return records

    def requeue(self, ids: list[str] | None = None) -> int:
        """Put the events named by record id (all when ``ids`` is None) back at the head of the line.

        Each record is removed and its entry queued in one transaction, so a crash in between
        neither loses nor doubles it. Returns how many were requeued.
        """
        wanted = None if ids is None else set(ids)
        moved = 0
        for record in self.records():
            if wanted is not None and record.id not in wanted:
                continue
            entry = record.data.get("entry")
            if entry is None:
                continue
            with self.client.pipeline(transaction=True) as pipe:
                pipe.lrem(self.key, 1, record.raw)
                pipe.rpush(self.queue_key, entry.encode())
                removed, _ = pipe.execute()
            if not removed:  # another operator took it meanwhile: undo our copy
                self.client.lrem(self.queue_key, -1, entry.encode())
                continue
            moved += 1
        return moved

    def purge(self) -> int:
        """Forget every failed event; returns how many there were."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(self.key)
            pipe.delete(self.key)
            count, _ = pipe.execute()
        return int(count)
