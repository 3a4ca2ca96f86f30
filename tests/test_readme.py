"""The README's configuration table is the one the declaration makes, key for key."""

from pathlib import Path

from flask_audit.config import KEYS, config_table

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_configuration_table_is_generated_from_the_declaration():
    assert config_table() in README, "regenerate it: python -m flask_audit.config"


def test_every_key_is_documented_with_its_meaning():
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in README.splitlines()
        if line.startswith("| `AUDIT_")
    }
    assert {key.name for key in KEYS} <= set(rows)
    for key in KEYS:
        assert key.doc in rows[key.name], key.name
