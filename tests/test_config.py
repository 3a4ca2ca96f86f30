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
    assert config.drain_interval == 0.5


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
