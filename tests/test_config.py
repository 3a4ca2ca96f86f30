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
    assert config.traffic_tiers == ((0, 100), (1000, 300), (10000, 1000))
    assert app.config["AUDIT_TRAFFIC_TIERS"] == ((0, 100), (1000, 300), (10000, 1000))
    assert config.overflow_policy == "direct"


def test_environment_fills_what_config_leaves_out(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIT_MAX_QUEUE_LENGTH", "50")
    monkeypatch.setenv("AUDIT_KEY_PREFIX", "app2:")
    monkeypatch.setenv("AUDIT_BATCH_TIERS", "0:10,100:20")
    monkeypatch.setenv("AUDIT_DRAIN_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("AUDIT_TRAFFIC_TIERS", "0:100")
    app = Flask("cfg", instance_path=str(tmp_path))
    app.config["AUDIT_KEY_PREFIX"] = "fromconfig:"
    config = load_config(app)
    assert config.max_queue_length == 50
    assert config.key_prefix == "fromconfig:" and config.queue_key == "fromconfig:queue"
    assert config.batch_tiers == ((0, 10), (100, 20))
    assert config.drain_interval_seconds == 0.5
    assert config.traffic_tiers == ((0, 100),)


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


TIERS_RULE = "needs pairs of depth >= 0 and size 1..100000"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("AUDIT_BUFFERED", 2, "must be a boolean (true/false, 1/0, yes/no, on/off), not 2"),
        ("AUDIT_BATCH_TIERS", "x", "must look like '0:100,1000:300', not 'x'"),
        ("AUDIT_BATCH_TIERS", [(0, 0)], f"{TIERS_RULE}, not [(0, 0)]"),
        ("AUDIT_BATCH_TIERS", [(-1, 5)], f"{TIERS_RULE}, not [(-1, 5)]"),
        ("AUDIT_BATCH_TIERS", [(0, 100_001)], f"{TIERS_RULE}, not [(0, 100001)]"),
        ("AUDIT_BATCH_TIERS", [(0, 1, 2)], f"{TIERS_RULE}, not [(0, 1, 2)]"),
        ("AUDIT_TRAFFIC_TIERS", "fast", "must look like '0:100,1000:300', not 'fast'"),
        (
            "AUDIT_TRAFFIC_TIERS",
            "0:100,-5:300",
            "needs pairs of events a minute >= 0 and size 1..100000, not '0:100,-5:300'",
        ),
        ("AUDIT_REDACT_KEYS", 5, "must be a comma-separated list of names, not 5"),
        ("AUDIT_MAX_QUEUE_LENGTH", True, "must be a whole number, not True"),
        ("AUDIT_MAX_QUEUE_LENGTH", 1.5, "must be a whole number, not 1.5"),
        ("AUDIT_DRAIN_INTERVAL_SECONDS", "abc", "must be a number, not 'abc'"),
        ("AUDIT_DRAIN_INTERVAL_SECONDS", True, "must be a number, not True"),
        ("AUDIT_DRAIN_INTERVAL_SECONDS", [1], "must be a number, not [1]"),
        ("AUDIT_DRAIN_INTERVAL_SECONDS", "-inf", "must be a finite number, not '-inf'"),
        ("AUDIT_RETENTION_DAYS", 36501, "must be at most 36500, not 36501"),
        ("AUDIT_KEY_PREFIX", 5, "must be a string, not 5"),
        ("AUDIT_OVERFLOW_POLICY", "explode", "must be one of 'direct', 'drop', not 'explode'"),
        ("AUDIT_DRAMATIQ_QUEUE", "", "must not be empty"),
        ("AUDIT_PARTITIONING", "monthly", "needs a PostgreSQL AUDIT_DATABASE_URL"),
    ],
)
def test_each_refusal_names_the_key_and_the_rule_word_for_word(tmp_path, key, value, message):
    with pytest.raises(AuditConfigError) as err:
        load_config(Flask("cfg", instance_path=str(tmp_path)), {key: value})
    assert str(err.value) == f"{key}: {message}"


def test_values_given_as_python_objects_and_the_defaults_filled_in(tmp_path):
    app = Flask("cfg", instance_path=str(tmp_path / "instance"))
    app.config["TESTING"] = True
    config = load_config(
        app,
        {
            "AUDIT_BUFFERED": 1,
            "AUDIT_BATCH_TIERS": [(1000, 300), (0, 1), (5000, 100_000)],
            "AUDIT_REDACT_KEYS": ["Api-Key", " token "],
            "AUDIT_KEY_PREFIX": "",
            "AUDIT_ALERT_WEBHOOK_URL": "HTTPS://hooks.example/x",
        },
    )
    assert config.buffered is True and load_config(app, {"AUDIT_BUFFERED": 0}).buffered is False
    assert config.batch_tiers == ((0, 1), (1000, 300), (5000, 100_000))
    assert config.redact_keys == ("api-key", "token")
    assert (config.key_prefix, config.queue_key, config.failed_key) == (
        "audit:",
        "audit:queue",
        "audit:failed",
    )
    assert config.spool_path == str(tmp_path / "instance" / "audit-spool.jsonl")
    assert config.database_url == "sqlite:///" + str(tmp_path / "instance" / "audit.db")
    assert config.instance_path == str(tmp_path / "instance")
    assert config.api_token is None and config.signing_keys_old is None
    assert config.testing is True and app.config["AUDIT_TESTING"] is True
    assert load_config(app, {"AUDIT_DATABASE_URL": "postgres://u@h/db", "AUDIT_PARTITIONING": "monthly"})


def test_tiers_and_key_lists_from_text_skip_blank_parts_and_sort():
    from flask_audit.config import parse_keys, parse_tiers

    assert parse_tiers(" 1000:300 , 0:100,, ") == ((0, 100), (1000, 300))
    assert parse_tiers("0:1,0:100000") == ((0, 1), (0, 100_000))
    with pytest.raises(AuditConfigError) as err:
        parse_tiers(" , ")
    assert str(err.value) == "AUDIT_BATCH_TIERS: needs pairs of depth >= 0 and size 1..100000, not ' , '"
    with pytest.raises(AuditConfigError) as err:
        parse_tiers("0", key="AUDIT_OTHER_TIERS")
    assert err.value.key == "AUDIT_OTHER_TIERS"
    assert parse_keys("K", " Api-Key ,,TOKEN, ") == ("api-key", "token")
    assert parse_keys("K", ["A", 7, " "]) == ("a", "7")
    assert parse_keys("K", "") == ()


def test_a_key_left_out_takes_its_default_and_its_maximum_is_allowed():
    from flask_audit.config import KEYS_BY_NAME

    assert KEYS_BY_NAME["AUDIT_MAX_QUEUE_LENGTH"].parse(None) == 10000
    assert KEYS_BY_NAME["AUDIT_API_TOKEN"].parse(None) is None
    assert KEYS_BY_NAME["AUDIT_RETENTION_DAYS"].parse(36500) == 36500
    with pytest.raises(AuditConfigError) as err:
        KEYS_BY_NAME["AUDIT_OVERFLOW_POLICY"].parse(5)
    assert err.value.key == "AUDIT_OVERFLOW_POLICY"


def test_both_postgresql_schemes_may_be_partitioned_and_both_webhook_schemes_are_taken(tmp_path):
    for scheme in ("postgres", "postgresql"):
        app = Flask(f"p{scheme}", instance_path=str(tmp_path))
        config = load_config(app, {"AUDIT_DATABASE_URL": f"{scheme}://h/db", "AUDIT_PARTITIONING": "monthly"})
        assert config.partitioning == "monthly"
    for url in ("http://hooks.example/x", "HTTPS://hooks.example/x"):
        app = Flask("w", instance_path=str(tmp_path))
        assert load_config(app, {"AUDIT_ALERT_WEBHOOK_URL": url}).alert_webhook_url == url
