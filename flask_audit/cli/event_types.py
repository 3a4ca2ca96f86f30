"""`flask audit event-types`: the registered event types and how often each was logged lately."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click
import orjson
import peewee
from flask import current_app
from flask.cli import with_appcontext

from flask_audit.formats.escaping import for_terminal
from flask_audit.runtime import current_runtime

#: the window the counts cover
DAYS = 30


@click.command("event-types")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per type.")
@with_appcontext
def event_types_command(as_json: bool) -> None:
    """List the registered event types with their category and their count over the last 30
    days; types logged but not registered are listed after them."""
    vocabulary = current_app.extensions["audit"].vocabulary
    counts = _counts()
    rows = [
        {
            "event_type": t.name,
            "category": t.category,
            "resource_type": t.resource_type,
            "ocsf": t.ocsf,
            "registered": True,
            "count_30_days": counts.pop(t.name, 0),
            "description": t.description,
        }
        for t in vocabulary
    ]
    rows += [
        {
            "event_type": name,
            "category": None,
            "resource_type": None,
            "ocsf": None,
            "registered": False,
            "count_30_days": count,
            "description": "",
        }
        for name, count in sorted(counts.items())
    ]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(f"{'event type':<32} {'category':<9} {'resource':<14} {'30 days':>9}  description")
    for row in rows:
        category = row["category"] or "(not registered)"
        click.echo(
            f"{for_terminal(row['event_type']):<32} {category:<9} {row['resource_type'] or '':<14}"
            f" {row['count_30_days']:>9,}  {row['description']}"
        )


def _counts() -> dict[str, int]:
    store = current_runtime().store
    model = store.model
    since = datetime.now(timezone.utc) - timedelta(days=DAYS)
    query = (
        model.select(model.event_type, peewee.fn.COUNT(model.id))
        .where(model.created_at >= since)
        .group_by(model.event_type)
        .tuples()
    )
    with store.translate():
        return {name: int(count) for name, count in query}
