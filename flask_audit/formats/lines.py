"""Stored rows as the lines of a download: CSV (a header, then cells that never start a formula)
or JSON lines. The CLI's export and the API's share them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from flask_audit.events.event import FIELDS
from flask_audit.formats.escaping import csv_cell
from flask_audit.storage.query import to_dict

#: columns of the CSV export, in order: the row id, then the event's fields
CSV_COLUMNS = ("id", *FIELDS)


def csv_row(data: dict[str, Any]) -> list[str]:
    metadata = data["metadata"]
    data = {**data, "metadata": orjson.dumps(metadata).decode() if metadata is not None else ""}
    return [csv_cell(data[c]) if data[c] is not None else "" for c in CSV_COLUMNS]


def export_lines(fmt: str, rows: Iterable[Any]) -> Iterator[str]:
    """One string per row (the header first, for CSV), each ending in a newline."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(csv_row(to_dict(row)))
            if buffer.tell() > 65536:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
        return
    for row in rows:
        yield orjson.dumps(to_dict(row)).decode() + "\n"
