"""Cleaning what a client may have sent, so that hostile input never costs an event.

Fields the application chooses (event_type, event_category) are validated strictly elsewhere.
The fields that may carry a client's bytes (description, user_id, resource ids, metadata strings,
user_agent, request_id, ip_address) are repaired here instead of refused: lone surrogates and
control characters become U+FFFD, over-long values are cut, NaN and huge integers become text,
cycles and excessive depth are cut off. Every repair is reported by path, and the event records
the paths under the reserved metadata key ``_sanitized``.

Metadata is also redacted in the same walk: a key whose normal form (lower case, ``-`` and ``_``
dropped) contains a sensitive word has its value replaced by ``[REDACTED]``, in any Mapping or
Sequence, including lists of ``(name, value)`` pairs such as header lists.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import functools
import ipaddress
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask_audit.errors import AuditValidationError

REDACTED = "[REDACTED]"
#: the metadata key under which an event lists the fields that were repaired
SANITIZED_KEY = "_sanitized"
#: what replaces a character that cannot be stored or shown safely
REPLACEMENT = "\ufffd"
#: metadata nested deeper than this is replaced by a marker (no RecursionError, bounded work)
MAX_DEPTH = 32
TOO_DEEP = "[too deep]"
CYCLE = "[cycle]"
#: integers orjson and PostgreSQL's JSONB keep exactly; larger ones are stored as text
MIN_INT, MAX_INT = -(2**63), 2**64 - 1

# C0 and C1 control characters, DEL and lone surrogates; the multi-line form keeps tab and newline
_SINGLE_LINE_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTI_LINE_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: str, *, multiline: bool = False) -> tuple[str, bool]:
    """``value`` with every unsafe character replaced; returns (text, whether it changed)."""
    if value.isprintable():  # the common case: no control character, no surrogate
        return value, False
    pattern = _MULTI_LINE_BAD if multiline else _SINGLE_LINE_BAD
    cleaned = pattern.sub(REPLACEMENT, value)
    return cleaned, cleaned != value


def client_text(
    name: str, value: Any, limit: int, altered: list[str], *, multiline: bool = False
) -> str | None:
    """A text field a client may have filled: cleaned and cut, never refused for its content.

    Refused only for its type (a dict as a user id is the application's mistake, not a client's).
    """
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        text = value
    elif kind is int:
        text = str(value)
    elif kind is bytes:
        text = value.decode("utf-8", "replace")
        if text.encode("utf-8", "surrogatepass") != value:
            altered.append(name)
    elif isinstance(value, str):
        text = str.__str__(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(int(value))
    else:
        raise AuditValidationError(name, "must be a string or an integer")
    if len(text) <= limit and text.isprintable():
        return text
    text, changed = clean_text(text, multiline=multiline)
    if len(text) > limit:
        text, changed = text[:limit], True
    if changed and name not in altered:
        altered.append(name)
    return text


#: addresses seen already written in their canonical form: the request path checks the client's
#: address twice (the request's, then the event's field), and a set look-up is a tenth of a call
#: through the cache below. Bounded, as clients choose their addresses: cleared when full.
CANONICAL_IPS: set[str] = set()
MAX_CANONICAL_IPS = 4096


def normal_ip(text: str) -> str | None:
    """The canonical form of an address without its IPv6 zone id, or None. The zone goes before
    the cache, so that a client varying it cannot churn the cache."""
    if text in CANONICAL_IPS:
        return text
    normal = _canonical_ip(text.split("%", 1)[0].strip())
    if normal == text:
        if len(CANONICAL_IPS) >= MAX_CANONICAL_IPS:
            CANONICAL_IPS.clear()
        CANONICAL_IPS.add(text)
    return normal


@functools.lru_cache(maxsize=4096)
def _canonical_ip(address: str) -> str | None:
    """Cached, since one client sends many events."""
    if not address or len(address) > 64:
        return None
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def client_ip(value: Any, altered: list[str]) -> str | None:
    """An address, normalised; a zone id is dropped and anything unparsable becomes None."""
    if value is None or value == "":
        return None
    text = value if type(value) is str else str(value)
    normal = normal_ip(text)
    # a changed spelling of the same address (case, zeros) is not a repair worth flagging
    if normal is None or "%" in text:
        altered.append("ip_address")
    return normal


def normal_key(key: str) -> str:
    """The form sensitive keys are compared in: ``X-Api-Key``, ``apiKey`` and ``api_key`` alike."""
    return key.lower().replace("-", "").replace("_", "")


@functools.lru_cache(maxsize=32)
def sensitive_matcher(keys: tuple[str, ...]) -> Callable[[str], bool]:
    """A predicate: does this key's normal form contain one of ``keys`` (themselves normalised)?"""
    words = tuple({normal_key(k) for k in keys if k})
    if not words:
        return _never
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words)))

    @functools.lru_cache(maxsize=4096)
    def sensitive(key: str) -> bool:
        return pattern.search(normal_key(key)) is not None

    return sensitive


def _never(_key: str) -> bool:
    return False


# Values orjson writes natively and that need no cleaning.
_NATIVE = (_dt.datetime, _dt.date, _dt.time, uuid.UUID)


class MetadataCleaner:
    """One walk over metadata: redacts, repairs, converts Mappings and Sequences to dicts and lists."""

    def __init__(self, redact_keys: tuple[str, ...], altered: list[str]) -> None:
        self.sensitive = sensitive_matcher(redact_keys)
        self.altered = altered
        self._path: set[int] = set()

    def clean(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        cleaned = self._mapping(value, "metadata", 0)
        if SANITIZED_KEY in cleaned:  # reserved: only the extension writes it
            del cleaned[SANITIZED_KEY]
            self._flag(f"metadata.{SANITIZED_KEY}")
        return cleaned

    def _flag(self, path: str) -> None:
        if len(self.altered) < 50:
            self.altered.append(path)

    def _value(self, value: Any, path: str, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            if value.isprintable():
                return value
            text, changed = clean_text(value, multiline=True)
            if changed:
                self._flag(path)
            return text
        if value is None or kind is bool:
            return value
        if kind is int:
            if MIN_INT <= value <= MAX_INT:
                return value
            self._flag(path)
            return str(value)
        if kind is float:
            if value != value or value in (_INF, -_INF):
                self._flag(path)
                return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
            return value
        if isinstance(value, Mapping):
            return self._nested(value, path, depth, self._mapping)
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            text = raw.decode("utf-8", "replace")
            text, _ = clean_text(text, multiline=True)
            if text.encode() != raw:
                self._flag(path)
            return text
        if isinstance(value, str):  # a str subclass
            return self._value(str.__str__(value), path, depth)
        if isinstance(value, enum.Enum):
            return self._value(value.value, path, depth)
        if isinstance(value, int):
            return self._value(int(value), path, depth)
        if isinstance(value, float):
            return self._value(float(value), path, depth)
        if isinstance(value, (Sequence, set, frozenset)):
            return self._nested(value, path, depth, self._sequence)
        if isinstance(value, _NATIVE):
            return value
        if isinstance(value, decimal.Decimal):
            return str(value)
        raise AuditValidationError(path, f"must be JSON-serialisable ({type(value).__name__} is not)")

    def _nested(self, value: Any, path: str, depth: int, walk: Callable[[Any, str, int], Any]) -> Any:
        if depth >= MAX_DEPTH:
            self._flag(path)
            return TOO_DEEP
        marker = id(value)
        if marker in self._path:
            self._flag(path)
            return CYCLE
        self._path.add(marker)
        try:
            return walk(value, path, depth + 1)
        finally:
            self._path.discard(marker)

    def _mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        sensitive = self.sensitive
        for key, item in value.items():
            name = key if type(key) is str and key.isprintable() else self._key(key, path)
            if sensitive(name):
                out[name] = REDACTED
            elif _plain(item):  # the common case, without building the item's path
                out[name] = item
            else:
                out[name] = self._value(item, f"{path}.{name}" if len(path) < 200 else path, depth)
        return out

    def _key(self, key: Any, path: str) -> str:
        if type(key) is str:
            text, changed = clean_text(key)
            if changed:
                self._flag(path)
            return text
        if key is None or isinstance(key, (int, float, bool, enum.Enum, uuid.UUID, str)):
            return self._key(str(key.value if isinstance(key, enum.Enum) else key), path)
        raise AuditValidationError(path, f"keys must be strings ({type(key).__name__} is not)")

    def _sequence(self, value: Any, path: str, depth: int) -> list[Any]:
        out: list[Any] = []
        sensitive = self.sensitive
        for index, item in enumerate(value):
            if _plain(item):
                out.append(item)
                continue
            child = f"{path}[{index}]" if len(path) < 200 else path
            if (
                isinstance(item, (tuple, list))
                and len(item) == 2
                and type(item[0]) is str
                and sensitive(item[0])
            ):  # a (name, value) pair, as in a list of headers
                out.append([self._value(item[0], child, depth), REDACTED])
            else:
                out.append(self._value(item, child, depth))
        return out


def _plain(item: Any) -> bool:
    """A value JSON and PostgreSQL take as it is: printable text, None, a bool, a 64-bit integer,
    a finite float."""
    kind = type(item)
    if kind is str:
        return item.isprintable()
    if item is None or kind is bool:
        return True
    if kind is int:
        return MIN_INT <= item <= MAX_INT
    return kind is float and item == item and item not in (_INF, -_INF)


_INF = float("inf")
