"""The edges of metadata repair and redaction, as build_event (what audit.log calls) applies them:
exact limits, the values only a subclass or an enum reaches, the paths a repair is reported at."""

from __future__ import annotations

import decimal
import enum

import pytest

from flask_audit.errors import AuditValidationError
from flask_audit.events.event import build_event
from flask_audit.events.sanitize import (
    CYCLE,
    MAX_DEPTH,
    MAX_INT,
    MIN_INT,
    REDACTED,
    REPLACEMENT,
    TOO_DEEP,
    sensitive_matcher,
)


def cleaned(metadata, **kwargs):
    """(metadata as stored without the report, the repaired paths)."""
    stored = dict(build_event("x", metadata=metadata, **kwargs).metadata)
    return stored, stored.pop("_sanitized", [])


class Count(int):
    pass


class Name(str):
    pass


class Colour(enum.Enum):
    RED = "red"
    BELL = "ring\x07"


class Switch(enum.Enum):
    ON = True
    NOTHING = None


class Ratio(float):
    pass


def test_64_bit_integers_are_kept_and_larger_ones_become_text():
    values = {"min": MIN_INT, "max": MAX_INT, "sub_min": Count(MIN_INT), "sub_max": Count(MAX_INT)}
    assert cleaned(values) == ({"min": MIN_INT, "max": MAX_INT, "sub_min": MIN_INT, "sub_max": MAX_INT}, [])
    stored, paths = cleaned({"over": MAX_INT + 1, "under": Count(MIN_INT - 1)})
    assert stored == {"over": str(MAX_INT + 1), "under": str(MIN_INT - 1)}
    assert paths == ["metadata.over", "metadata.under"]


def test_infinities_and_nan_become_their_names():
    stored, paths = cleaned({"up": float("inf"), "down": float("-inf"), "none": float("nan"), "ok": 0.5})
    assert stored == {"up": "Infinity", "down": "-Infinity", "none": "NaN", "ok": 0.5}
    assert paths == ["metadata.down", "metadata.none", "metadata.up"]


def test_bytes_keep_their_lines_and_lose_their_control_characters():
    stored, paths = cleaned({"body": b"line 1\n\tline 2\x00", "clean": b"plain"})
    assert stored == {"body": f"line 1\n\tline 2{REPLACEMENT}", "clean": "plain"}
    assert paths == ["metadata.body"]


def test_a_str_subclass_is_stored_as_plain_repaired_text():
    stored, paths = cleaned({"name": Name("a\x00b"), "fine": Name("ok")})
    assert stored == {"name": f"a{REPLACEMENT}b", "fine": "ok"}
    assert type(stored["fine"]) is str
    assert paths == ["metadata.name"]


def test_decimals_become_their_exact_text():
    assert cleaned({"price": decimal.Decimal("1.10")}) == ({"price": "1.10"}, [])


def test_keys_that_are_not_strings_become_their_text_without_a_report():
    stored, paths = cleaned({1: "a", None: "b", Colour.RED: "c", 2.5: "d"})
    assert stored == {"1": "a", "None": "b", "red": "c", "2.5": "d"}
    assert paths == []


def test_a_key_repaired_is_reported_at_its_mapping():
    stored, paths = cleaned({"a\x00": 1, "nested": {Colour.BELL: 2}})
    assert stored == {f"a{REPLACEMENT}": 1, "nested": {f"ring{REPLACEMENT}": 2}}
    assert paths == ["metadata", "metadata.nested"]


def test_the_applications_mistakes_name_the_type():
    with pytest.raises(AuditValidationError) as err:
        build_event("x", metadata={"when": object()})
    assert (err.value.field, err.value.rule) == ("metadata.when", "must be JSON-serialisable (object is not)")
    with pytest.raises(AuditValidationError) as err:
        build_event("x", metadata={(1, 2): "pair"})
    assert (err.value.field, err.value.rule) == ("metadata", "keys must be strings (tuple is not)")


def nest(levels: int, leaf):
    value = leaf
    for _ in range(levels):
        value = {"k": value}
    return value


def test_nesting_is_kept_to_the_limit_and_cut_one_past_it():
    stored, paths = cleaned(nest(MAX_DEPTH + 1, "leaf"))
    assert stored == nest(MAX_DEPTH + 1, "leaf") and paths == []
    stored, paths = cleaned(nest(MAX_DEPTH + 2, "leaf"))
    assert stored == nest(MAX_DEPTH + 1, TOO_DEEP)
    assert paths == ["metadata" + ".k" * (MAX_DEPTH + 1)]


def test_a_value_shared_twice_is_not_a_cycle_but_a_real_cycle_is_cut():
    shared = {"n": [1, 2]}
    assert cleaned({"a": shared, "b": shared}) == ({"a": shared, "b": shared}, [])
    loop: dict = {"n": 1}
    loop["self"] = loop
    stored, paths = cleaned({"loop": loop})
    assert stored == {"loop": {"n": 1, "self": CYCLE}}
    assert paths == ["metadata.loop.self"]


def test_paths_grow_until_200_characters_then_stay_put():
    key = "a" * 190  # "metadata." + 190 = 199 characters: one more step is still named
    stored, paths = cleaned({key: {"x": "\x00"}})
    assert paths == [f"metadata.{key}.x"]
    key = "a" * 191  # 200 characters: the path stops growing
    stored, paths = cleaned({key: {"x": "\x00"}})
    assert paths == [f"metadata.{key}"]
    stored, paths = cleaned({"a" * 190: ["\x00"]})
    assert paths == [f"metadata.{'a' * 190}[0]"]
    stored, paths = cleaned({"a" * 191: ["\x00"]})
    assert paths == [f"metadata.{'a' * 191}"]


def test_at_most_fifty_repairs_are_reported():
    stored, paths = cleaned({f"k{i:02d}": "\x00" for i in range(60)})
    assert len(paths) == 50
    assert all(value == REPLACEMENT for value in stored.values())


def test_pairs_are_redacted_by_name_whatever_the_value():
    headers = [["Authorization", 12345], ("X-Api-Key", None), ["password\x00", "hunter2"], ["Accept", "*/*"]]
    stored, paths = cleaned({"headers": headers}, redact_keys=("authorization", "api_key", "password"))
    assert stored == {
        "headers": [
            ["Authorization", REDACTED],
            ["X-Api-Key", REDACTED],
            [f"password{REPLACEMENT}", REDACTED],
            ["Accept", "*/*"],
        ]
    }
    assert paths == ["metadata.headers[2]"]


@pytest.mark.parametrize("key", ["X-Api-Key", "apiKey", "API_KEY", "x_api-key", "my-api_key-2"])
def test_sensitive_keys_match_whatever_their_case_dashes_and_underscores(key):
    assert sensitive_matcher(("api_key",))(key)
    assert sensitive_matcher(("Api-Key",))(key)
    assert cleaned({key: "secret"}, redact_keys=("api_key",)) == ({key: REDACTED}, [])


@pytest.mark.parametrize("key", ["api", "key", "apikye", "a-p-i"])
def test_other_keys_are_kept(key):
    assert not sensitive_matcher(("api_key",))(key)
    assert cleaned({key: "value"}, redact_keys=("api_key",)) == ({key: "value"}, [])


def test_enum_values_are_stored_as_their_values_repaired():
    stored, paths = cleaned(
        {"colour": Colour.RED, "bell": Colour.BELL, "on": Switch.ON, "none": Switch.NOTHING}
    )
    assert stored == {"colour": "red", "bell": f"ring{REPLACEMENT}", "on": True, "none": None}
    assert type(stored["on"]) is bool
    assert paths == ["metadata.bell"]


def test_a_float_subclass_is_stored_as_a_float_and_its_infinity_by_name():
    stored, paths = cleaned({"half": Ratio(0.5), "all": Ratio("inf")})
    assert stored == {"half": 0.5, "all": "Infinity"} and type(stored["half"]) is float
    assert paths == ["metadata.all"]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("fe80::1%eth0", "fe80::1"), ("fe80::1%eth0%x", "fe80::1"), ("FE80::0001%1", "fe80::1"), ("::1", "::1")],
)
def test_the_zone_id_is_dropped_from_the_first_percent_sign(sent, stored):
    event = build_event("x", ip_address=sent)
    assert event.ip_address == stored


def test_an_address_seen_before_keeps_every_rule_of_the_first_check():
    """The request path remembers addresses already in canonical form; a repeat must come out as
    the full check would give it: other spellings of it normalised, zone ids still dropped and
    flagged, and what is not an address still refused."""
    from flask_audit.events import sanitize

    sanitize.CANONICAL_IPS.clear()
    first = build_event("x", ip_address="2001:db8::7")
    assert first.ip_address == "2001:db8::7" and "2001:db8::7" in sanitize.CANONICAL_IPS
    again = build_event("x", ip_address="2001:db8::7")
    assert again.ip_address == "2001:db8::7" and again.metadata is None  # nothing repaired
    assert build_event("x", ip_address="2001:DB8:0::7").ip_address == "2001:db8::7"
    zoned = build_event("x", ip_address="2001:db8::7%eth0")
    assert zoned.ip_address == "2001:db8::7" and zoned.metadata["_sanitized"] == ["ip_address"]
    assert "2001:DB8:0::7" not in sanitize.CANONICAL_IPS and "2001:db8::7%eth0" not in sanitize.CANONICAL_IPS
    refused = build_event("x", ip_address="not-an-address")
    assert refused.ip_address is None and refused.metadata["_sanitized"] == ["ip_address"]
    assert build_event("x", ip_address=["2001:db8::7"]).ip_address is None  # unhashable: no crash


def test_addresses_a_client_varies_cannot_grow_the_remembered_set_past_its_bound():
    from flask_audit.events import sanitize

    sanitize.CANONICAL_IPS.clear()
    for i in range(sanitize.MAX_CANONICAL_IPS + 500):
        build_event("x", ip_address=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert 0 < len(sanitize.CANONICAL_IPS) <= sanitize.MAX_CANONICAL_IPS
