"""CloudEvents 1.0 in its JSON form: the stored event as ``data`` in the standard envelope."""

from __future__ import annotations

from typing import Any

#: the prefix of every ``type``: reverse-DNS of the project, then the event type
TYPE_PREFIX = "com.flask-audit."


def to_cloudevent(row: dict[str, Any], source: str) -> dict[str, Any]:
    """``id`` is the event_id, so a consumer that deduplicates on (source, id) sees a redelivered
    event once; ``subject`` names the resource when the event has one."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": row["event_id"],
        "source": source,
        "type": TYPE_PREFIX + row["event_type"],
        "time": row["created_at"],
        "datacontenttype": "application/json",
    }
    if row.get("resource_type") or row.get("resource_id"):
        envelope["subject"] = f"{row.get('resource_type') or ''}/{row.get('resource_id') or ''}"
    if row.get("tenant_id"):
        envelope["tenantid"] = row["tenant_id"]  # an extension attribute: lower-case letters only
    envelope["data"] = row
    return envelope
