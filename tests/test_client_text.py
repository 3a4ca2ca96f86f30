"""client_text, the repair every client-filled text field goes through: what it keeps as it is,
what it repairs and reports once, and the one thing it refuses (a type the application chose)."""

from __future__ import annotations

import enum

import pytest

from flask_audit.errors import AuditValidationError
from flask_audit.events.sanitize import REPLACEMENT, client_text


def repair(value, limit=10, *, multiline=False, altered=None):
    """(the stored text, the names reported as repaired)."""
    altered = [] if altered is None else altered
    return client_text("field", value, limit, altered, multiline=multiline), altered


def test_none_stays_none_and_nothing_is_reported():
    assert repair(None) == (None, [])


def test_printable_text_up_to_the_limit_is_kept_as_it_is():
    assert repair("abcdefghij") == ("abcdefghij", [])
    assert repair("") == ("", [])


def test_one_character_over_the_limit_is_cut_and_reported():
    assert repair("abcdefghijk") == ("abcdefghij", ["field"])


def test_integers_become_their_digits_unreported():
    assert repair(42) == ("42", [])
    assert repair(-7) == ("-7", [])
    assert repair(12345678901, limit=5) == ("12345", ["field"])


def test_an_int_subclass_is_stored_as_its_number_not_its_str():
    class Level(enum.IntEnum):
        HIGH = 3

    class Shouting(int):
        def __str__(self):
            return "LOUD"

    assert repair(Level.HIGH) == ("3", [])
    assert repair(Shouting(5)) == ("5", [])


def test_a_str_subclass_is_stored_as_its_characters_not_its_str():
    class Masked(str):
        def __str__(self):
            return "***"

    assert repair(Masked("secret")) == ("secret", [])
    assert type(repair(Masked("secret"))[0]) is str


def test_booleans_floats_and_containers_are_the_applications_mistake():
    for wrong in (True, 1.5, ["a"], {"a": 1}, object()):
        with pytest.raises(AuditValidationError) as err:
            repair(wrong)
        assert str(err.value) == "field: must be a string or an integer"


def test_valid_utf8_bytes_are_decoded_unreported():
    assert repair("çødé".encode()) == ("çødé", [])


def test_invalid_bytes_become_replacement_characters_reported_once():
    text, altered = repair(b"ab\xffcd")
    assert text == f"ab{REPLACEMENT}cd" and altered == ["field"]
    # invalid and too long and with a control character: still one report
    text, altered = repair(b"\xff\x01" + b"x" * 20)
    assert text == REPLACEMENT * 2 + "x" * 8 and altered == ["field"]


def test_encoded_surrogates_in_bytes_are_repaired():
    text, altered = repair(b"a\xed\xa0\x80b")
    assert REPLACEMENT in text and text.startswith("a") and text.endswith("b")
    assert altered == ["field"]


def test_control_characters_become_replacement_characters():
    assert repair("a\x00b\x1bc") == (f"a{REPLACEMENT}b{REPLACEMENT}c", ["field"])
    assert repair("a\x85b") == (f"a{REPLACEMENT}b", ["field"])


def test_line_breaks_and_tabs_survive_only_in_multi_line_fields():
    assert repair("a\nb\tc", multiline=True) == ("a\nb\tc", [])
    assert repair("a\nb\tc") == (f"a{REPLACEMENT}b{REPLACEMENT}c", ["field"])
    assert repair("a\r\nb\x0bc", multiline=True) == (f"a\r\nb{REPLACEMENT}c", ["field"])


def test_a_field_already_reported_is_not_reported_twice():
    altered = ["field"]
    assert repair("a\x00", altered=altered) == (f"a{REPLACEMENT}", ["field"])
    assert repair("x" * 11, altered=altered) == ("x" * 10, ["field"])


def test_other_fields_reports_are_kept():
    text, altered = repair("a\x00", altered=["other"])
    assert altered == ["other", "field"]


def test_a_repair_that_changes_nothing_reports_nothing():
    # not printable (a zero-width space is Cf) but nothing unsafe: kept, and not reported
    assert repair("a\u200bb") == ("a\u200bb", [])


def test_single_line_is_the_default():
    assert client_text("field", "a\nb", 10, []) == f"a{REPLACEMENT}b"


def test_a_value_exactly_at_the_limit_that_is_safe_but_not_printable_is_not_reported():
    altered: list[str] = []
    assert client_text("field", "ab\u200b", 3, altered) == "ab\u200b" and altered == []


def test_an_empty_address_is_no_address_and_no_repair():
    from flask_audit.events.sanitize import client_ip

    altered: list[str] = []
    assert client_ip("", altered) is None and altered == []


def test_an_address_object_is_read_as_its_text():
    import ipaddress

    from flask_audit.events.sanitize import client_ip

    altered: list[str] = []
    assert client_ip(ipaddress.ip_address("10.0.0.1"), altered) == "10.0.0.1" and altered == []
    assert client_ip(ipaddress.ip_address("2001:db8::1"), altered) == "2001:db8::1" and altered == []
