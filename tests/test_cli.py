"""The flask audit command group, through Flask's CLI runner."""

import json

from flask_audit.ingest.spool import Spool


def test_init_db_is_safe_twice(make_app, fake_redis, any_db_url):
    app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=any_db_url, create_schema=False)
    runner = app.test_cli_runner()
    outcomes = []
    for _ in range(2):
        result = runner.invoke(args=["audit", "init-db"])
        assert result.exit_code == 0, result.output
        outcomes.append(result.output.split()[1])
    assert outcomes == ["created", "current"]
    assert audit.runtime(app).store.count() == 0


def test_drain_empties_the_queue(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        for i in range(130):
            audit.log("x", user_id=i)
    result = app.test_cli_runner().invoke(args=["audit", "drain", "--batch-size", "50"])
    assert result.exit_code == 0, result.output
    assert "drained 130 events: 130 inserted, 0 failed" in result.output
    assert audit.runtime(app).store.count() == 130


def test_status_shows_the_picture(make_app, fake_redis):
    app, audit = make_app(redis_client=fake_redis)
    with app.app_context():
        audit.log("x")
    runner = app.test_cli_runner()
    text = runner.invoke(args=["audit", "status"]).output
    assert "queue       1" in text and "status" in text
    data = json.loads(runner.invoke(args=["audit", "status", "--json"]).output)
    assert data["metrics"]["queue_length"] == 1 and data["metrics"]["totals"]["enqueued"] == 1


def test_replay_spool_sends_spooled_events_to_the_queue(make_app, fake_redis):
    from flask_audit.events.event import build_event

    app, audit = make_app(redis_client=fake_redis)
    runtime = audit.runtime(app)
    events = [build_event("spooled", user_id=i) for i in range(3)]
    for event in events:
        Spool(runtime.config.spool_path).append(event.to_entry())
    result = app.test_cli_runner().invoke(args=["audit", "replay-spool"])
    assert "replayed 3 events" in result.output
    assert runtime.queue.depth() == 3 and runtime.spool.pending() == 0
