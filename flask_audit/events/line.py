"""Version-2 queue entries: an event as one line of PostgreSQL's COPY text, behind its version.

``2<TAB>`` then one cell per declared field (``schema.FIELDS``, in order), tab-separated: NULL as
``\\N``; a backslash, newline, carriage return or tab inside a value escaped as COPY's text format
escapes it; ``created_at`` in ISO 8601 with its offset; ``metadata`` as its JSON.

Why: the drain on PostgreSQL joins a batch of such lines and hands them to COPY as they are, so
the worker neither parses nor re-serialises an event (decoding a JSON entry and writing it back
out as COPY text was nearly all of the worker's own work per event). The column types check what
they can (a UUID, a timestamp, the lengths, JSON), and ``checked_batch`` checks the rest over the
batch's columns; a batch that fails a check goes entry by entry through ``parse`` and the same
rules as a JSON entry. Everything else that reads an entry (SQLite, write-through, failed records)
goes through ``parse`` too.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from itertools import repeat
from typing import Any

import orjson

from flask_audit.errors import AuditValidationError
from flask_audit.events import schema

VERSION = 2
MARKER = b"2\t"
NAMES = schema.NAMES
#: separators in one line, the version's cell included
TABS = len(NAMES)
#: NULL, until a line is joined: no value holds it (validation refuses it)
NUL = "\x00"
_dumps = orjson.dumps
#: COPY text's escapes of a value (the drain's encoder of decoded rows uses them too)
ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_UNESCAPES = {b"\\\\": b"\\", b"\\n": b"\n", b"\\r": b"\r", b"\\t": b"\t"}
_ESCAPE = re.compile(rb"\\.?", re.DOTALL)
_COLUMN = {name: index + 1 for index, name in enumerate(NAMES)}  # cell 0 is the version
_CATEGORIES = frozenset(name.encode() for name in schema.CATEGORIES)
_OUTCOMES = frozenset(name.encode() for name in schema.OUTCOMES)
_UTC = b"+00:00"
#: the lengths of created_at in RFC 3339, UTC, as orjson writes it (without and with µs)
_STAMP_LENGTHS = frozenset({25, 32})
_LIMITS = schema.MAX_LENGTHS


#: a row's values in column order, in C
_in_column_order = operator.itemgetter(*NAMES)


def encode(row: dict[str, Any], metadata_json: bytes | None) -> bytes:
    """The line of a validated row (None for NULL; ``created_at`` a datetime in UTC); its
    metadata as the JSON already made for it, or made here."""
    return encode_nul({name: NUL if value is None else value for name, value in row.items()}, metadata_json)


def encode_nul(row: dict[str, Any], metadata_json: bytes | None) -> bytes:
    """``encode`` of a row that holds NUL for NULL (``audit.log``'s: it builds the row for the
    entry alone, so it writes NUL there at once), which it changes. The cells come out in column
    order in one C call, joined once; only a line holding a character COPY escapes is joined
    again cell by cell."""
    metadata = row["metadata"]
    if metadata is not NUL:
        row["metadata"] = (metadata_json or _dumps(metadata)).decode()
    row["created_at"] = _dumps(row["created_at"])[1:-1].decode()  # RFC 3339, as version 1 wrote it
    cells = _in_column_order(row)
    line = "\t".join(cells)
    if line.count("\t") != TABS - 1 or "\\" in line or "\n" in line or "\r" in line:
        line = "\t".join([cell.translate(ESCAPES) for cell in cells])
    return MARKER + line.replace(NUL, "\\N").encode()


def _unescape(match: re.Match[bytes]) -> bytes:
    try:
        return _UNESCAPES[match.group()]
    except KeyError:
        escape = match.group()
        raise AuditValidationError("entry", f"holds the escape {escape!r}, which no writer makes") from None


def parse(raw: bytes) -> dict[str, Any]:
    """The fields of a version-2 line, as a JSON entry holds them (``created_at`` as text,
    ``metadata`` decoded). Raises ``AuditValidationError`` for a line that is not one."""
    cells = raw.split(b"\t")
    if len(cells) != TABS + 1:
        raise AuditValidationError("entry", f"has {len(cells)} cells; a version-2 line has {TABS + 1}")
    data: dict[str, Any] = {}
    for name, cell in zip(NAMES, cells[1:], strict=True):
        if cell == b"\\N":
            data[name] = None
            continue
        if b"\\" in cell:
            cell = _ESCAPE.sub(_unescape, cell)
        try:
            data[name] = cell.decode()
        except UnicodeDecodeError:
            raise AuditValidationError(name, "is not UTF-8") from None
    metadata = data.get("metadata")
    if metadata is not None:
        try:
            data["metadata"] = orjson.loads(metadata)
        except orjson.JSONDecodeError as exc:
            raise AuditValidationError("metadata", f"is not valid JSON ({exc})") from None
    return data


def version_of(raw: bytes) -> int | None:
    """The version a line announces (``3<TAB>…`` is 3), or None when ``raw`` is not a line."""
    head, tab, _ = raw[:8].partition(b"\t")
    return int(head) if tab and head.isdigit() else None


def checked_batch(entries: list[bytes]) -> tuple[bytes, Counter[str]] | None:
    """For a batch of version-2 lines that every check passes: the COPY text of their rows and
    how many ended in each outcome. None when any line fails a check, or is not a version-2 line:
    the caller then decodes entry by entry, which names the bad one.

    The checks, over columns rather than entry by entry (a loop in C per rule): the cells' count
    and the version; the rules PostgreSQL's types do not enforce: a 36-character event_id, a
    created_at in UTC, a non-empty event_type, a known category and outcome, a description within
    its limit, an address without a zone id, metadata that is a JSON object this package can read
    back. The types do the rest (a UUID, a timestamp, VARCHAR lengths, valid UTF-8, no NUL); a
    refusal there sends the batch entry by entry too.
    """
    text = b"\n".join(entries)
    if text.count(b"\n") != len(entries) - 1 or b"\r" in text:
        return None
    split = [entry.split(b"\t") for entry in entries]
    if set(map(len, split)) != {TABS + 1}:
        return None
    columns = list(zip(*split, strict=True))
    version, stamps = columns[0], columns[_COLUMN["created_at"]]
    if set(version) != {b"2"} or set(map(len, columns[_COLUMN["event_id"]])) != {36}:
        return None
    if not set(map(len, stamps)) <= _STAMP_LENGTHS or not all(map(bytes.endswith, stamps, repeat(_UTC))):
        return None
    types = set(columns[_COLUMN["event_type"]])
    if b"" in types or b"\\N" in types:
        return None
    if not set(columns[_COLUMN["event_category"]]) <= _CATEGORIES:
        return None
    outcomes = columns[_COLUMN["outcome"]]
    if not set(outcomes) <= _OUTCOMES:
        return None
    if max(map(len, columns[_COLUMN["description"]])) > _LIMITS["description"]:
        return None  # bytes, escapes included: no shorter than the text, so within is within
    addresses = columns[_COLUMN["ip_address"]]
    if max(map(len, addresses)) > 39 or any(map(bytes.__contains__, addresses, repeat(b"%"))):
        return None
    metadata = [cell for cell in columns[_COLUMN["metadata"]] if cell != b"\\N"]
    if metadata and not _readable_objects(metadata):
        return None
    body = (b"\n" + text).replace(b"\n" + MARKER, b"\n")  # no newline inside a line: checked above
    return body[1:] + b"\n", Counter({key.decode(): count for key, count in Counter(outcomes).items()})


def _readable_objects(cells: list[bytes]) -> bool:
    """Whether each metadata cell is a JSON object that orjson reads: PostgreSQL's jsonb takes
    numbers orjson cannot (``1e400``), which the sealer would then fail on."""
    try:
        if b"\\" in b"".join(cells):  # COPY escapes: read as PostgreSQL will
            cells = [_ESCAPE.sub(_unescape, cell) for cell in cells]
        return set(map(type, map(orjson.loads, cells))) == {dict}
    except (orjson.JSONDecodeError, AuditValidationError):
        return False
