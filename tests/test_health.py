"""Pure policy: numbers to status, issues (original design's texts) and recommendations."""

from flask_audit.monitoring.health import Thresholds, assess
from flask_audit.monitoring.metrics import TOTALS, Snapshot


def snapshot(**overrides):
    values = dict(
        queue_length=234,
        priority_length=0,
        failed_length=0,
        current_batch_size=100,
        inserts_last_minute=450,
        failures_last_minute=0,
        batches_last_minute=5,
        avg_batch_time_ms=45.0,
        workers_alive=1,
        totals={name: 0 for name in TOTALS},
    )
    values.update(overrides)
    return Snapshot(**values)


def test_all_normal():
    result = assess(snapshot(), Thresholds())
    assert result.status == "healthy"
    assert result.issues == []
    assert result.recommendations == [{"severity": "info", "message": "All systems operating normally."}]


def test_queue_backed_up_asks_to_scale_workers():
    result = assess(snapshot(queue_length=6843), Thresholds())
    assert result.status == "unhealthy"
    assert result.issues == ["Audit queue backed up! Queue length: 6843"]
    assert result.recommendations[0]["severity"] == "critical"
    assert "Scale workers" in result.recommendations[0]["message"]


def test_failure_rate_asks_to_check_the_database():
    result = assess(snapshot(failures_last_minute=145), Thresholds())
    assert result.issues == ["High failure rate! Failures: 145/min"]
    assert "database connection" in result.recommendations[0]["message"]


def test_dropped_events_warn_while_they_are_being_dropped():
    totals = {name: 0 for name in TOTALS} | {"dropped": 1247}
    assert assess(snapshot(totals=totals), Thresholds()).status == "healthy"  # long ago
    result = assess(snapshot(totals=totals, dropped_last_minute=12), Thresholds())
    assert result.status == "degraded"
    assert result.issues == ["Events being dropped! Total dropped: 1247"]
    assert (
        "queue limit" in result.recommendations[0]["message"]
        or "AUDIT_MAX_QUEUE_LENGTH" in (result.recommendations[0]["message"])
    )


def test_thresholds_are_configuration():
    assert assess(snapshot(queue_length=6843), Thresholds(queue_length=10000)).status == "healthy"
    assert assess(snapshot(queue_length=101), Thresholds(queue_length=100)).status == "unhealthy"


def test_a_backlog_with_no_worker_says_so():
    result = assess(snapshot(workers_alive=0), Thresholds())
    assert "No audit worker is running" in result.issues
