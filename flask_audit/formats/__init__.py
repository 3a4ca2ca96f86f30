"""Stored events as other systems read them: plain JSON, OCSF, CloudEvents and Splunk HEC.

One ``Formatter`` turns a stored row (``flask_audit.storage.query.to_dict``) into the JSON
object a format sends; ``flask audit export --format`` and the log stream share them, so a
SIEM reads the same shape whichever way the events reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask_audit.formats.cloudevents import to_cloudevent
from flask_audit.formats.ocsf import OCSF_VERSION, to_ocsf
from flask_audit.formats.splunk import to_splunk_hec

if TYPE_CHECKING:
    from flask_audit.vocabulary import Vocabulary

#: the JSON formats, in the order the CLI and the README list them
FORMATS = ("jsonl", "ocsf", "cloudevents", "splunk-hec")

Formatter = Callable[[dict[str, Any]], dict[str, Any]]


def formatter(name: str, vocabulary: Vocabulary | None = None, source: str = "/flask-audit") -> Formatter:
    """The function that turns a stored row into format ``name``'s JSON object."""
    if name == "jsonl":
        return _as_stored
    if name == "ocsf":
        known = vocabulary.get if vocabulary is not None else _unknown
        return lambda row: to_ocsf(row, known(row["event_type"]), source)
    if name == "cloudevents":
        return lambda row: to_cloudevent(row, source)
    if name == "splunk-hec":
        return lambda row: to_splunk_hec(row, source)
    raise ValueError(f"unknown format {name!r}: one of {', '.join(FORMATS)}")


def _unknown(_name: str) -> None:
    return None


def _as_stored(row: dict[str, Any]) -> dict[str, Any]:
    return row


__all__ = ["FORMATS", "OCSF_VERSION", "Formatter", "formatter"]
