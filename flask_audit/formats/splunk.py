"""Splunk's HTTP Event Collector format: one JSON object per event, the event under ``event``."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def to_splunk_hec(row: dict[str, Any], source: str) -> dict[str, Any]:
    """``time`` in epoch seconds (HEC's unit), so Splunk indexes the event at its own time, not
    at its arrival."""
    moment = datetime.fromisoformat(row["created_at"])
    return {
        "time": round(moment.timestamp(), 6),
        "source": source,
        "sourcetype": "flask-audit",
        "event": row,
    }
