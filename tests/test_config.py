"""Configuration: keyword options > app.config > environment > default, visible in app.config."""

import pytest
from flask import Flask

from flask_audit import AuditConfigError
from flask_audit.config import load_config


def test_defaults_are_written_back_to_app_config(tmp_path):
    app = Flask("cfg", instance_path=str(tmp_path))
    config = load_config(app)
    assert app.config["AUDIT_MAX_QUEUE_LENGTH"] == 10000
    assert config.queue_key == "audit:queue" and config.failed_key == "audit:failed"
    assert config.database_url == f"sqlite:///{tmp_path}/audit.db"
    assert config.batch_tiers == ((0, 100), (1000, 300), (5000, 1000))
    assert config.overflow_policy == "direct"


def test_environment_fills_what_config_leaves_out(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIT_MAX_QUEUE_LENGTH", "50")
    monkeypatch.setenv("AUDIT_KEY_PREFIX", "app2:")
    monkeypatch.setenv("AUDIT_BATCH_TIERS", "0:10,100:20")
    monkeypatch.setenv("AUDIT_DRAIN_INTERVAL_SECONDS", "0.5")
    app = Flask("cfg", instance_path=str(tmp_path))
    app.config["AUDIT_KEY_PREFIX"] = "fromconfig:"
    config = load_config(app)
    assert config.max_queue_length == 50
    assert config.key_prefix == "fromconfig:" and config.queue_key == "fromconfig:queue"
    assert config.batch_tiers == ((0, 10), (100, 20))
    assert config.drain_interval_seconds == 0.5


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AUDIT_OVERFLOW_POLICY", "explode"),
        ("AUDIT_MAX_QUEUE_LENGTH", 0),
        ("AUDIT_BATCH_TIERS", "zero:one"),
        ("AUDIT_BATCH_TIERS", [(0, 0)]),
    ],
)
def test_bad_values_name_the_key(tmp_path, key, value):
    app = Flask("cfg", instance_path=str(tmp_path))
    with pytest.raises(AuditConfigError) as info:
        load_config(app, {key: value})
    assert info.value.key == key


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("AUDIT_RETENTION_DAYS", "-5", "at least 1"),
        ("AUDIT_RETENTION_DAYS", "0", "at least 1"),
        ("AUDIT_PURGE_CHUNK", "0", "at least 1"),
        ("AUDIT_BUFFERED", "ture", "boolean"),
        ("AUDIT_MONITORING_TOKEN", "", "non-empty"),
        ("AUDIT_API_TOKEN", "   ", "non-empty"),
        ("AUDIT_ALERT_WEBHOOK_SECRET", "", "non-empty"),
        ("AUDIT_MAX_PENDING_DRAINS", "0", "at least 1"),
        ("AUDIT_VISIBILITY_TIMEOUT_SECONDS", "0", "at least 1"),
        ("AUDIT_PARTITIONING", "weekly", "'monthly'"),
        ("AUDIT_DRAIN_INTERVAL_SECONDS", "nan", "finite"),
        ("AUDIT_ALERT_INTERVAL_SECONDS", "0", "at least 0.1"),
        ("AUDIT_BUFFER_FLUSH_MS", "ten", "whole number"),
        ("AUDIT_MAX_METADATA_BYTES", "10", "at least 256"),
        ("AUDIT_ALERT_WEBHOOK_URL", "file:///etc/passwd", "http or https"),
    ],
)
def test_a_bad_environment_value_fails_init_app_naming_key_and_value(tmp_path, monkeypatch, key, value, says):
    """What a user sets in the environment is checked when the app starts, not at 03:17."""
    from flask_audit import FlaskAudit

    monkeypatch.setenv(key, value)
    app = Flask("cfg", instance_path=str(tmp_path))
    with pytest.raises(AuditConfigError) as info:
        FlaskAudit(app)
    assert isinstance(info.value, ValueError)
    assert info.value.key == key and says in info.value.rule
    assert repr(value) in str(info.value) or key in (
        "AUDIT_MONITORING_TOKEN",
        "AUDIT_API_TOKEN",
        "AUDIT_ALERT_WEBHOOK_SECRET",
    )
    assert "audit" not in app.extensions


@pytest.mark.parametrize(
    ("raw", "expected"), [("true", True), ("On", True), ("1", True), ("no", False), ("0", False)]
)
def test_booleans_are_spelled_out(tmp_path, monkeypatch, raw, expected):
    monkeypatch.setenv("AUDIT_BUFFERED", raw)
    assert load_config(Flask("cfg", instance_path=str(tmp_path))).buffered is expected


def test_keyword_options_win_over_app_config_and_the_environment(tmp_path, monkeypatch):
    from flask_audit import FlaskAudit

    monkeypatch.setenv("AUDIT_RETENTION_DAYS", "30")
    app = Flask("cfg", instance_path=str(tmp_path))
    app.config["AUDIT_RETENTION_DAYS"] = 60
    audit = FlaskAudit(app, AUDIT_RETENTION_DAYS=7)
    assert audit.runtime(app).config.retention_days == 7 and app.config["AUDIT_RETENTION_DAYS"] == 7
    app2 = Flask("cfg2", instance_path=str(tmp_path))
    app2.config["AUDIT_RETENTION_DAYS"] = 60
    assert FlaskAudit(app2).runtime(app2).config.retention_days == 60  # app.config over the environment


def test_every_declared_key_is_read_by_the_package():
    """A key that nothing reads is a promise nobody keeps: each attribute is used outside config.py."""
    import re
    from pathlib import Path

    from flask_audit.config import KEYS

    package = Path(__file__).resolve().parent.parent / "flask_audit"
    source = "\n".join(p.read_text() for p in package.rglob("*.py") if p.name != "config.py")
    used = set(re.findall(r"config\.([a-z_]+)", source))
    unread = sorted(key.name for key in KEYS if key.attr not in used)
    assert unread == []


def test_an_empty_secret_is_refused_with_the_way_to_turn_it_off(tmp_path):
    with pytest.raises(AuditConfigError) as err:
        load_config(Flask("cfg", instance_path=str(tmp_path)), {"AUDIT_API_TOKEN": ""})
    assert str(err.value) == "AUDIT_API_TOKEN: must be a non-empty string when set (unset it to turn it off)"


def test_the_declaration_and_auditconfig_are_checked_against_each_other(monkeypatch):
    from flask_audit import config

    config._check_declaration()  # as shipped: one attribute per key, one key per attribute
    monkeypatch.setattr(config, "KEYS", (*config.KEYS, config.Key("AUDIT_NOT_AN_ATTRIBUTE", None, "x")))
    with pytest.raises(RuntimeError) as err:
        config._check_declaration()
    assert str(err.value) == "config declaration and AuditConfig differ: ['not_an_attribute']"


def test_old_signing_keys_come_as_a_list_or_comma_separated_text(tmp_path):
    def old_keys(value):
        return load_config(Flask("cfg", instance_path=str(tmp_path)), {"AUDIT_SIGNING_KEYS_OLD": value})

    assert old_keys(" key-a , key-b").signing_keys_old == ("key-a", "key-b")
    assert old_keys(["key-a", " key-b "]).signing_keys_old == ("key-a", "key-b")
    for bad in ("key-a,,key-b", ["key-a", 7]):
        with pytest.raises(AuditConfigError) as err:
            old_keys(bad)
        assert err.value.key == "AUDIT_SIGNING_KEYS_OLD"
