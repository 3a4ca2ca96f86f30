"""FlaskAudit: request capture, log / critical / audited, and the fallbacks of the write path."""

import pytest
import redis
from flask import Flask

from flask_audit import AuditValidationError, AuditWriteError, FlaskAudit
from flask_audit.events.event import decode_entry
from flask_audit.pipeline.drain import Drainer

DEAD_REDIS = "redis://127.0.0.1:1/0"


def queued(runtime):
    return [
        decode_entry(raw) for raw in reversed(runtime.queue.client.lrange(runtime.queue.queue_key, 0, -1))
    ]


def test_request_fields_are_captured_and_request_id_echoed(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, user_loader=lambda: "user-7")

    @app.post("/keys")
    def create():
        return {"id": audit.log("api_key_created", resource_type="api_key", resource_id=3)}

    response = app.test_client().post(
        "/keys",
        headers={"User-Agent": "pytest-agent", "X-Request-ID": "req-123"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.headers["X-Request-ID"] == "req-123"
    (entry,) = queued(audit.runtime(app))
    assert entry["event_id"] == response.json["id"]
    assert (entry["ip_address"], entry["user_agent"], entry["request_id"]) == (
        "203.0.113.9",
        "pytest-agent",
        "req-123",
    )
    assert entry["user_id"] == "user-7"
    assert entry["resource_id"] == "3" and entry["event_category"] == "info"


def test_request_id_is_generated_when_missing_or_insane(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)

    @app.get("/")
    def index():
        audit.log("viewed")
        return "ok"

    client = app.test_client()
    first = client.get("/").headers["X-Request-ID"]
    second = client.get("/", headers={"X-Request-ID": "bad id with spaces <script>"}).headers["X-Request-ID"]
    assert len(first) == 32 and len(second) == 32 and first != second
    assert [e["request_id"] for e in queued(audit.runtime(app))] == [first, second]


def test_explicit_arguments_win_over_the_request(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, user_loader=lambda: "loader")
    with app.test_request_context("/", headers={"User-Agent": "browser"}):
        audit.log("x", user_id="explicit", ip_address="198.51.100.1", user_agent="given", request_id="r1")
    (entry,) = queued(audit.runtime(app))
    assert (entry["user_id"], entry["ip_address"], entry["user_agent"], entry["request_id"]) == (
        "explicit",
        "198.51.100.1",
        "given",
        "r1",
    )


def test_original_design_dict_works_as_keywords(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    seed = {
        "user_id": "u1",
        "resource_type": "usage_quota",
        "event_type": "usage_warning_80_percent",
        "event_category": "warning",
        "description": "User reached 80% of monthly quota",
        "metadata": {"current_usage": 8000, "quota_limit": 10000, "percentage": 80},
    }
    with app.app_context():
        audit.log(**seed)
    (entry,) = queued(audit.runtime(app))
    assert {k: entry[k] for k in seed} == seed


def test_outside_a_request_and_an_app_context(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    event_id = audit.log("cron_job_ran", description="nightly")
    (entry,) = queued(audit.runtime(app))
    assert entry["event_id"] == event_id
    assert entry["ip_address"] is None and entry["request_id"] is None


def test_bad_input_raises_a_value_error_naming_the_field(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context(), pytest.raises(AuditValidationError, match="event_category"):
        audit.log("x", event_category="nope")
    with app.app_context(), pytest.raises(ValueError, match="metadata"):
        audit.log("x", metadata={"x": object()})
    assert queued(audit.runtime(app)) == []


def test_second_registration_is_refused_with_advice(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with pytest.raises(RuntimeError, match="already registered"):
        FlaskAudit(app)


def test_one_extension_serves_several_apps(tmp_path, fake_redis):
    audit = FlaskAudit(redis=fake_redis)
    apps = []
    for name in ("a", "b"):
        app = Flask(name, instance_path=str(tmp_path / name))
        app.config["AUDIT_KEY_PREFIX"] = f"{name}:"
        app.config["AUDIT_DATABASE_URL"] = f"sqlite:///{tmp_path}/{name}.db"
        audit.init_app(app)
        apps.append(app)
    for app in apps:
        with app.app_context():
            audit.log("hello")
    assert fake_redis.llen("a:queue") == 1 and fake_redis.llen("b:queue") == 1
    with pytest.raises(RuntimeError, match="app context"):
        audit.log("ambiguous")


def test_audited_records_each_attempt_with_its_outcome(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)

    @app.delete("/keys/<key_id>")
    @audit.audited("api_key_deleted", resource_type="api_key", resource_id="key_id")
    def delete(key_id):
        return ("", 404) if key_id == "missing" else ("", 204)

    @app.post("/keys")
    @audit.audited(
        "api_key_created", resource_type="api_key", resource_id=lambda response: response.json["id"]
    )
    def create():
        return {"id": "k-new"}, 201

    client = app.test_client()
    assert client.delete("/keys/k1").status_code == 204
    assert client.delete("/keys/missing").status_code == 404
    assert client.post("/keys").status_code == 201
    assert [(e["event_type"], e["resource_id"], e["outcome"]) for e in queued(audit.runtime(app))] == [
        ("api_key_deleted", "k1", "success"),
        ("api_key_deleted", "missing", "failure"),
        ("api_key_created", "k-new", "success"),
    ]


def test_critical_is_stored_before_it_returns(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        event_id = audit.critical("permanent_ban_applied", user_id="u1", resource_type="account")
    runtime = audit.runtime(app)
    assert runtime.queue.depth() == 0
    (row,) = runtime.store.recent()
    assert str(row.event_id) == event_id and row.event_category == "critical"
    assert runtime.metrics.snapshot().totals["critical"] == 1


@pytest.mark.parametrize(
    "keyword",
    [
        {"event_id": "01a21c3b-4a2f-792e-a98c-eb6501cd1fac"},
        {"created_at": "2020-01-01T00:00:00+00:00"},
        {"event_category": "info"},
    ],
)
def test_critical_takes_exactly_logs_keywords(make_app, fake_redis, keyword):
    """No duplicate event ids, no backdating, no downgrading: critical refuses what log refuses."""
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context(), pytest.raises(TypeError, match=next(iter(keyword))):
        audit.critical("permanent_ban_applied", **keyword)
    assert audit.runtime(app).store.count() == 0


def test_full_queue_writes_through_and_counts_overflow(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_MAX_QUEUE_LENGTH=2)
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(5)]
    runtime = audit.runtime(app)
    assert runtime.queue.depth() == 2
    assert sorted(runtime.store.event_ids()) == sorted(ids[2:])
    totals = runtime.metrics.snapshot().totals
    assert (totals["enqueued"], totals["overflow"], totals["dropped"]) == (2, 3, 0)


def test_drop_policy_drops_and_counts(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis, AUDIT_MAX_QUEUE_LENGTH=2, AUDIT_OVERFLOW_POLICY="drop")
    with app.app_context():
        for i in range(5):
            audit.log("x", user_id=i)
    runtime = audit.runtime(app)
    assert runtime.store.count() == 0
    assert runtime.metrics.snapshot().totals["dropped"] == 3


@pytest.mark.expect_swallowed
def test_dead_redis_writes_through_fast_and_never_raises(make_app, swallowed_errors):
    app, audit = make_app(AUDIT_REDIS_URL=DEAD_REDIS)

    @app.post("/act")
    def act():
        return {"id": audit.log("x")}

    client = app.test_client()
    ids = [client.post("/act").json["id"] for _ in range(20)]
    runtime = audit.runtime(app)
    assert sorted(runtime.store.event_ids()) == sorted(ids)
    # The breaker: one failed attempt, then Redis is skipped during the cooldown.
    assert [where for _, where in swallowed_errors] == ["redis push"]
    assert runtime.breaker.is_open


@pytest.mark.expect_swallowed
def test_everything_down_spools_then_replays(make_app, fake_redis, swallowed_errors):
    app, audit = make_app(
        AUDIT_REDIS_URL=DEAD_REDIS,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x",
        create_schema=False,
    )
    with app.app_context():
        ids = [audit.log("x", user_id=i) for i in range(3)]
    runtime = audit.runtime(app)
    assert runtime.spool.pending() == 3
    # Redis comes back (the runtime's clients are swapped for a live one), the spool is replayed.
    runtime.__dict__["redis"] = runtime.__dict__["background_redis"] = fake_redis
    for name in ("queue", "background_queue", "metrics"):
        runtime.__dict__.pop(name, None)
    assert runtime.write_path.replay_spool() == 3
    assert runtime.spool.pending() == 0
    assert [
        decode_entry(e)["event_id"] for e in reversed(fake_redis.lrange(runtime.config.queue_key, 0, -1))
    ] == ids


@pytest.mark.expect_swallowed
def test_critical_falls_back_to_the_priority_list_then_raises_only_when_all_fail(
    make_app, fake_redis, tmp_path
):
    app, audit = make_app(
        redis_client=fake_redis, AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x", create_schema=False
    )
    with app.app_context():
        event_id = audit.critical("permanent_ban_applied", user_id="u1")
    runtime = audit.runtime(app)
    assert decode_entry(fake_redis.lindex(runtime.queue.priority_key, 0))["event_id"] == event_id

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the spool's folder should be")
    app2, audit2 = make_app(
        AUDIT_REDIS_URL=DEAD_REDIS,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x",
        AUDIT_SPOOL_PATH=str(blocked / "spool.jsonl"),
        create_schema=False,
    )
    with app2.app_context(), pytest.raises(AuditWriteError, match="database.*redis.*spool"):
        audit2.critical("permanent_ban_applied", user_id="u2")


def test_priority_events_drain_first(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    with app.app_context():
        audit.log("normal")
    from flask_audit.events.event import build_event

    critical = build_event("permanent_ban_applied", event_category="critical")
    runtime.queue.push_priority(critical.to_entry())
    Drainer(runtime.queue, runtime.store).drain_all(10)
    rows = list(runtime.store.model.select().order_by(runtime.store.model.id))
    assert [r.event_type for r in rows] == ["permanent_ban_applied", "normal"]


@pytest.mark.expect_swallowed
def test_redis_errors_never_reach_the_view(make_app, swallowed_errors):
    app, audit = make_app(redis_client=redis.Redis(host="127.0.0.1", port=1))  # nothing listens

    @app.post("/act")
    def act():
        return {"id": audit.log("x")}

    response = app.test_client().post("/act")
    assert response.status_code == 200
    assert audit.runtime(app).store.event_ids() == [response.json["id"]]
    assert swallowed_errors[0][1] == "redis push"


def test_log_redacts_with_the_configured_keys_through_the_users_path(make_app, fake_redis):
    """audit.log itself must hand its configuration to the event: defaults, then a custom list."""
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        audit.log("x", metadata={"X-Api-Key": "k", "headers": [["Cookie", "c"]], "plain": "p"})
    (entry,) = queued(audit.runtime(app))
    assert entry["metadata"] == {
        "X-Api-Key": "[REDACTED]",
        "headers": [["Cookie", "[REDACTED]"]],
        "plain": "p",
    }
    app2, audit2 = make_app(redis_client=fake_redis, AUDIT_REDACT_KEYS="plain", AUDIT_MAX_METADATA_BYTES=300)
    with app2.app_context():
        audit2.log("y", metadata={"plain": "p", "apiKey": "kept: not in this app's list", "big": "b" * 400})
    entry = queued(audit2.runtime(app2))[-1]
    assert entry["metadata"]["_sanitized"] == ["metadata"]  # over this app's 300 bytes
    audit2.runtime(app2).queue.client.delete(audit2.runtime(app2).queue.queue_key)
    with app2.app_context():
        audit2.log("y", metadata={"plain": "p", "apiKey": "kept"})
    assert queued(audit2.runtime(app2))[-1]["metadata"] == {"plain": "[REDACTED]", "apiKey": "kept"}


def test_critical_says_on_one_line_why_each_fallback_failed(make_app, tmp_path):
    """Database, Redis and spool all failing: one AuditWriteError, one line per cause."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from flask_audit import AuditWriteError

    (tmp_path / "a-file").write_text("")
    app, audit = make_app(
        redis_client=redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0)),
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
        AUDIT_SPOOL_PATH=str(tmp_path / "a-file" / "spool.jsonl"),
        create_schema=False,
    )
    with app.app_context(), pytest.raises(AuditWriteError) as err:
        audit.critical("permanent_ban_applied", user_id="8")
    message = str(err.value)
    assert "\n" not in message and "  " not in message
    assert message.startswith("critical event ") and " not stored: database: " in message
    causes = message.split(" not stored: ", 1)[1].split("; ")
    assert [cause.split(": ", 1)[0] for cause in causes] == ["database", "redis", "spool"]
    assert "127.0.0.1" in causes[0] and "Errno" in causes[2]
    assert "Connection refused" in causes[1] or "Error" in causes[1], causes[1]  # redis's own error
    # psycopg2's two-line message, on one line with single spaces
    assert "Connection refused Is the server running on that host" in causes[0]


def test_each_critical_fallback_is_counted_where_operators_look(make_app, fake_redis, monkeypatch):
    """Database down: the priority list, counted as critical_fallback. Redis down too: the spool,
    counted as spooled once Redis answers again. The counts reach the totals /metrics reads."""
    import redis

    app, audit = make_app(
        redis_client=fake_redis,
        AUDIT_DATABASE_URL="postgresql://postgres@127.0.0.1:1/none",
        create_schema=False,
    )
    runtime = audit.runtime(app)
    with app.app_context():
        first = audit.critical("permanent_ban_applied", user_id="7")
    assert first.encode() in fake_redis.lindex(runtime.queue.priority_key, 0)
    assert runtime.metrics.snapshot().totals["critical_fallback"] == 1

    def down(*args, **kwargs):
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(runtime.queue, "push_priority", down)
    monkeypatch.setattr(runtime.metrics, "incr", down)
    with app.app_context():
        second = audit.critical("permanent_ban_applied", user_id="8")
    assert runtime.spool.pending() == 1
    monkeypatch.undo()
    runtime.write_path.counts.flush()
    totals = runtime.metrics.snapshot().totals
    assert (totals["critical_fallback"], totals["spooled"], totals["critical"]) == (1, 1, 0)
    assert second != first


def test_a_forked_worker_draws_request_ids_of_its_own():
    """gunicorn forks its workers from one parent: without a new seed each would hand out the
    same request ids in the same order."""
    import os

    from flask_audit.ingest.capture import request_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, " ".join(request_id({}) for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode().split()
    parent = [request_id({}) for _ in range(3)]
    assert len(child) == 3 and all(len(rid) == 32 and int(rid, 16) >= 0 for rid in child + parent)
    assert set(child).isdisjoint(parent)
