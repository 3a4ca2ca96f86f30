"""Log streams: every stored event reaches the endpoint, in order, at least once, whatever the
endpoint does; the cursor survives in the database; the lag shows and alerts."""

from __future__ import annotations

import json
import threading
import time

import pytest

from flask_audit.errors import StreamCursorMoved
from flask_audit.events.event import build_event
from flask_audit.streams import cursor as cursors
from flask_audit.streams.sender import STREAM_NAME, StreamSender
from tests.processes import wait_for
from tests.stream_endpoint import StreamEndpoint


@pytest.fixture
def endpoint():
    receiver = StreamEndpoint()
    yield receiver
    receiver.close()


@pytest.fixture
def streamed(make_app, pg_url, fake_redis, endpoint):
    """An app on PostgreSQL whose stream goes to ``endpoint``, with short timeouts."""

    def build(**options):
        options = {
            "AUDIT_STREAM_URL": endpoint.url,
            "AUDIT_STREAM_BATCH_SIZE": 50,
            "AUDIT_STREAM_TIMEOUT_SECONDS": 0.5,
            "AUDIT_STREAM_MAX_BACKOFF_SECONDS": 0.2,
            **options,
        }
        app, audit = make_app(redis_client=fake_redis, AUDIT_DATABASE_URL=pg_url, **options)
        runtime = audit.runtime(app)
        return app, audit, runtime

    return build


def first_deliveries(lines: list[dict]) -> list[int]:
    """Row ids in the order each was first delivered (a batch sent again repeats some)."""
    seen: set[int] = set()
    order = []
    for line in lines:
        if line["id"] not in seen:
            seen.add(line["id"])
            order.append(line["id"])
    return order


def test_every_event_arrives_in_order_while_the_endpoint_fails_stalls_and_recovers(streamed, endpoint):
    app, audit, runtime = streamed()
    store = runtime.store
    sender = StreamSender(store, runtime.config, audit.vocabulary)
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    writers_done = threading.Event()

    def write(worker: int) -> None:  # two writers: ids commit out of order, as with two workers
        for round_ in range(40):
            store.insert([build_event("x", user_id=f"{worker}-{round_}-{i}") for i in range(25)])
            # spread over the endpoint's eight phases (4.8 s), so that each has events to send: at
            # 10 ms a round a fast database let the first phase deliver everything, and the
            # failures never happened
            time.sleep(0.12)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for writer in writers:
        writer.start()
    try:
        for mode in ("ok", "fail", "ok", "stall", "redirect", "ok", "fail", "ok"):
            endpoint.mode = mode
            time.sleep(0.6)
        for writer in writers:
            writer.join(60)
        writers_done.set()
        stored = [row.id for row in store.model.select(store.model.id).order_by(store.model.id)]
        assert len(stored) == 2000
        wait_for(lambda: set(first_deliveries(endpoint.lines())) >= set(stored), 60, "all 2,000 delivered")
    finally:
        stop.set()
        thread.join(10)
    order = first_deliveries(endpoint.lines())
    assert order == sorted(order) == stored  # in id order, none skipped, nothing invented
    assert endpoint.attempts > len(endpoint.accepted)  # the failures really happened
    position = cursors.read(store, STREAM_NAME)
    assert position.last_id == stored[-1] and position.delivered >= 2000


def test_a_batch_the_endpoint_took_is_counted_even_when_the_cursor_never_moves(
    streamed, endpoint, monkeypatch
):
    """The worker may die between the POST and the cursor's move (the stream worker's test kills
    it): the delivered counter has the batch already, and the successor's re-send counts again."""
    app, audit, runtime = streamed()
    runtime.store.insert([build_event("x", user_id=str(i)) for i in range(30)])
    recorded: list[dict] = []
    sender = StreamSender(runtime.store, runtime.config, record=recorded.append)

    def killed(*args, **kwargs):
        raise SystemExit("killed before the cursor moved")

    monkeypatch.setattr(cursors, "advance", killed)
    with pytest.raises(SystemExit):
        sender.deliver(time.monotonic() + 30)
    assert len(endpoint.accepted) == 1 and recorded == [{"delivered": 30}]
    monkeypatch.undo()
    assert (
        StreamSender(runtime.store, runtime.config, record=recorded.append).deliver(time.monotonic() + 30)
        == 30
    )
    assert recorded == [{"delivered": 30}, {"delivered": 30}]  # the re-send was a delivery too
    assert len(endpoint.lines()) == 60


def test_the_cursor_lives_in_the_database_so_a_new_sender_goes_on_from_it(streamed, endpoint):
    app, audit, runtime = streamed()
    runtime.store.insert([build_event("x", user_id=str(i)) for i in range(120)])
    first = StreamSender(runtime.store, runtime.config)
    assert first.deliver(time.monotonic() + 30) == 120
    runtime.store.insert([build_event("y", user_id=str(i)) for i in range(30)])
    second = StreamSender(runtime.store, runtime.config)  # a restarted worker
    assert second.deliver(time.monotonic() + 30) == 30
    ids = [line["id"] for line in endpoint.lines()]
    assert len(ids) == len(set(ids)) == 150
    batches = [headers["X-Audit-Batch"] for _, headers in endpoint.accepted]
    assert batches[0].startswith("default:") and len(batches) == 4  # 50 + 50 + 20, then 30


def test_a_failed_post_leaves_the_cursor_where_it_was(streamed, endpoint):
    from flask_audit.errors import StreamDeliveryError

    app, audit, runtime = streamed()
    runtime.store.insert([build_event("x") for _ in range(10)])
    sender = StreamSender(runtime.store, runtime.config)
    for mode, message in (("fail", "HTTP 503"), ("redirect", "HTTP 307"), ("stall", "TimeoutError")):
        endpoint.mode = mode
        with pytest.raises(StreamDeliveryError, match=message):
            sender.deliver(time.monotonic() + 30)
        assert cursors.read(runtime.store, STREAM_NAME).last_id == 0
    endpoint.mode = "ok"
    assert sender.deliver(time.monotonic() + 30) == 10


def test_a_sender_that_lost_the_race_cannot_move_the_cursor_back(streamed):
    app, audit, runtime = streamed()
    stale = cursors.read(runtime.store, STREAM_NAME)
    cursors.advance(runtime.store, stale, 10, 10)
    with pytest.raises(StreamCursorMoved):
        cursors.advance(runtime.store, stale, 5, 5)
    assert cursors.read(runtime.store, STREAM_NAME).last_id == 10


@pytest.mark.parametrize(
    ("fmt", "content_type", "authorization"),
    [
        ("ocsf", "application/x-ndjson", "Bearer tok"),
        ("cloudevents", "application/cloudevents-batch+json", "Bearer tok"),
        ("splunk-hec", "application/json", "Splunk tok"),
    ],
)
def test_each_format_is_sent_with_its_content_type_and_token(
    streamed, endpoint, fmt, content_type, authorization
):
    app, audit, runtime = streamed(AUDIT_STREAM_FORMAT=fmt, AUDIT_STREAM_TOKEN="tok")
    events = [build_event("api_key_created", user_id=str(i)) for i in range(3)]
    runtime.store.insert(events)
    StreamSender(runtime.store, runtime.config, audit.vocabulary).deliver(time.monotonic() + 30)
    body, headers = endpoint.accepted[0]
    assert headers["Content-Type"] == content_type and headers["Authorization"] == authorization
    if fmt == "cloudevents":
        sent = json.loads(body)  # batched mode: one JSON array
        assert [e["id"] for e in sent] == [e.event_id for e in events]
    elif fmt == "ocsf":
        assert [e["metadata"]["uid"] for e in endpoint.lines()] == [e.event_id for e in events]
    else:
        assert [e["event"]["event_id"] for e in endpoint.lines()] == [e.event_id for e in events]


def test_the_clock_measures_the_lag_and_alerts_when_the_stream_falls_behind(streamed, endpoint):
    from datetime import datetime, timedelta, timezone

    from flask_audit.pipeline.clock import Clock
    from flask_audit.pipeline.tasks import setup

    app, audit, runtime = streamed(AUDIT_ALERT_STREAM_LAG_SECONDS=60)
    old = datetime.now(timezone.utc) - timedelta(minutes=5)
    runtime.store.insert([build_event("x", created_at=old) for _ in range(7)])
    broker, actors = setup(runtime, make_global=False)
    clock = Clock(runtime, broker, actors)
    assert clock.elect()
    notices = clock.alert()
    assert [(n.rule, n.status) for n in notices] == [("stream_lagging", "firing")]
    text = notices[0].text
    assert text.startswith("⚠️  WARNING: Log stream falling behind! Oldest undelivered event: 30")
    assert text.endswith("s old (7 waiting)")
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "audit_stream_undelivered 7.0" in metrics
    record = runtime.background_metrics.record_stream  # what the worker's stream thread passes
    StreamSender(runtime.store, runtime.config, record=record).deliver(time.monotonic() + 30)
    notices = clock.alert()
    assert [(n.rule, n.status) for n in notices] == [("stream_lagging", "resolved")]
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert "audit_stream_lag_seconds 0.0" in metrics and "audit_stream_delivered_total 7.0" in metrics


def test_retries_wait_half_a_second_doubling_to_the_cap_with_jitter(streamed):
    app, audit, runtime = streamed(AUDIT_STREAM_MAX_BACKOFF_SECONDS=3)
    sender = StreamSender(runtime.store, runtime.config)
    for failures, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (30, 3.0)):
        waits = [sender._backoff(failures) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (failures, min(waits), max(waits))
        assert max(waits) - min(waits) > ceiling / 10  # jittered, not one fixed wait
