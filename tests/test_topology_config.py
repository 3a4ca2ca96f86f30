"""The keys of a larger topology: Sentinel, WAIT for replicas, another broker; and the clients
and broker they make (no server is reached here)."""

from __future__ import annotations

import pytest
from dramatiq.brokers.redis import RedisBroker
from flask import Flask

from flask_audit.config import load_config
from flask_audit.errors import AuditConfigError
from flask_audit.pipeline.brokers import PendingDrains, build_broker
from flask_audit.queue.connect import RedisConnector, url_credentials
from flask_audit.runtime import AuditRuntime


def config(tmp_path, **values):
    return load_config(Flask("topology", instance_path=str(tmp_path)), values)


def test_sentinels_are_read_as_host_port_pairs_from_text_or_a_list(tmp_path):
    text = config(
        tmp_path, AUDIT_REDIS_SENTINELS=" s1:26379, [::1]:26380,", AUDIT_REDIS_SENTINEL_MASTER="audit"
    )
    assert text.redis_sentinels == (("s1", 26379), ("::1", 26380))
    listed = config(
        tmp_path, AUDIT_REDIS_SENTINELS=[("s1", "26379"), "s2:1"], AUDIT_REDIS_SENTINEL_MASTER="audit"
    )
    assert listed.redis_sentinels == (("s1", 26379), ("s2", 1))
    assert config(tmp_path).redis_sentinels is None


@pytest.mark.parametrize(
    ("values", "key", "rule"),
    [
        (
            {"AUDIT_REDIS_SENTINELS": "s1:26379"},
            "AUDIT_REDIS_SENTINEL_MASTER",
            "is required when AUDIT_REDIS_SENTINELS is set",
        ),
        (
            {"AUDIT_REDIS_SENTINEL_MASTER": "audit"},
            "AUDIT_REDIS_SENTINELS",
            "is required when AUDIT_REDIS_SENTINEL_MASTER is set",
        ),
        (
            {"AUDIT_REDIS_SENTINELS": "s1"},
            "AUDIT_REDIS_SENTINELS",
            "must list host:port pairs separated by commas, not 's1'",
        ),
        (
            {"AUDIT_REDIS_SENTINELS": "s1:70000"},
            "AUDIT_REDIS_SENTINELS",
            "must list host:port pairs separated by commas, not 's1:70000'",
        ),
        (
            {"AUDIT_REDIS_SENTINELS": [("s1",)]},
            "AUDIT_REDIS_SENTINELS",
            "must list host:port pairs separated by commas, not [('s1',)]",
        ),
        (
            {"AUDIT_REDIS_SENTINELS": " , "},
            "AUDIT_REDIS_SENTINELS",
            "must list at least one host:port, not ' , '",
        ),
        (
            {"AUDIT_BROKER_URL": "kafka://k:9092"},
            "AUDIT_BROKER_URL",
            "must be an amqp://, amqps://, redis:// or rediss:// URL, not 'kafka://k:9092'",
        ),
        (
            {"AUDIT_REDIS_WAIT_REPLICAS": 1, "AUDIT_REDIS_WAIT_TIMEOUT_MS": 250},
            "AUDIT_REDIS_WAIT_TIMEOUT_MS",
            "must be shorter than AUDIT_REDIS_TIMEOUT_SECONDS (250 ms), not 250",
        ),
        ({"AUDIT_REDIS_WAIT_REPLICAS": 17}, "AUDIT_REDIS_WAIT_REPLICAS", "must be at most 16, not 17"),
        ({"AUDIT_REDIS_WAIT_TIMEOUT_MS": 0}, "AUDIT_REDIS_WAIT_TIMEOUT_MS", "must be at least 1, not 0"),
    ],
)
def test_each_topology_refusal_names_the_key_and_the_rule(tmp_path, values, key, rule):
    with pytest.raises(AuditConfigError) as err:
        config(tmp_path, **values)
    assert str(err.value) == f"{key}: {rule}"


def test_a_wait_timeout_is_fine_without_replicas_and_below_the_socket_timeout(tmp_path):
    assert config(tmp_path, AUDIT_REDIS_WAIT_TIMEOUT_MS=5000).redis_wait_replicas == 0
    on = config(tmp_path, AUDIT_REDIS_WAIT_REPLICAS=2, AUDIT_REDIS_WAIT_TIMEOUT_MS=249)
    assert (on.redis_wait_replicas, on.redis_wait_timeout_ms) == (2, 249)


def test_the_url_lends_its_database_and_credentials_to_the_master_sentinel_names():
    assert url_credentials("redis://user:p%40ss@ignored:1/3") == {
        "username": "user",
        "password": "p@ss",
        "db": 3,
    }
    assert url_credentials("redis://ignored:1") == {}
    assert url_credentials(None) == {}


def test_with_sentinels_every_client_asks_them_for_the_master(tmp_path):
    cfg = config(
        tmp_path,
        AUDIT_REDIS_SENTINELS="127.0.0.1:1,127.0.0.1:2",
        AUDIT_REDIS_SENTINEL_MASTER="audit",
        AUDIT_REDIS_URL="redis://:secret@unused:6379/2",
    )
    runtime = AuditRuntime(cfg)
    pool = runtime.redis.connection_pool
    assert type(pool).__name__ == "SentinelConnectionPool" and pool.service_name == "audit"
    assert pool.connection_kwargs["password"] == "secret" and pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["socket_timeout"] == cfg.redis_timeout_seconds
    assert runtime.background_redis.connection_pool.connection_kwargs["socket_timeout"] == 10.0
    assert runtime.connector.sentinel() is runtime.connector.sentinel()  # one manager per app
    addresses = [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in runtime.connector.sentinel().sentinels
    ]
    assert addresses == [("127.0.0.1", 1), ("127.0.0.1", 2)]


def test_without_sentinels_no_url_is_a_mistake_of_the_caller(tmp_path):
    with pytest.raises(ValueError, match="a Redis URL is needed"):
        RedisConnector(config(tmp_path), None).client()
    assert RedisConnector(config(tmp_path), "redis://x:1").master_address() is None


def test_the_broker_follows_the_audit_redis_unless_told_otherwise(tmp_path):
    runtime = AuditRuntime(config(tmp_path, AUDIT_REDIS_URL="redis://127.0.0.1:1/0"))
    broker = build_broker(runtime)
    assert isinstance(broker, RedisBroker) and broker.client is runtime.background_redis
    other = build_broker(AuditRuntime(config(tmp_path, AUDIT_BROKER_URL="redis://127.0.0.1:2/5")))
    assert other.client.connection_pool.connection_kwargs["port"] == 2
    assert other.client.connection_pool.connection_kwargs["db"] == 5


def test_a_rabbitmq_broker_counts_its_pending_drains_in_redis(tmp_path):
    runtime = AuditRuntime(
        config(
            tmp_path,
            AUDIT_REDIS_URL="redis://127.0.0.1:1/0",
            AUDIT_BROKER_URL="amqp://guest:guest@127.0.0.1:1/",
        )
    )
    broker = build_broker(runtime)
    assert type(broker).__name__ == "RabbitmqBroker"
    trackers = [m for m in broker.middleware if isinstance(m, PendingDrains)]
    assert len(trackers) == 1 and trackers[0].key == runtime.config.key("drains:pending")
