"""The README's configuration table lists every AUDIT_* key the package reads."""

from pathlib import Path

from flask_audit.config import DEFAULTS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_key_is_documented_with_its_meaning():
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in README.splitlines()
        if line.startswith("| `AUDIT_")
    }
    assert set(DEFAULTS) <= set(rows), sorted(set(DEFAULTS) - set(rows))
    for key, (_default, meaning) in DEFAULTS.items():
        assert meaning in rows[key], key
