"""Pure policy: numbers to status, issues (original design's texts) and recommendations."""

import pytest

from flask_audit.monitoring.health import Finding, Thresholds, assess, findings, thresholds_of
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


SCALE = "Scale workers: start more `dramatiq` worker processes."
CHECK_DB = "Check the database connection and the worker logs."
MORE_WORKERS = "Increase the worker count or AUDIT_MAX_QUEUE_LENGTH."
START = "Start a worker: `dramatiq flask_audit.worker` (FLASK_APP set)."
INSPECT = "Inspect them with `flask audit failed list`, fix the cause, then `failed requeue`."


def quiet(**overrides):
    """A snapshot with nothing to report but ``overrides``."""
    return snapshot(**{"queue_length": 0, **overrides})


@pytest.mark.parametrize(
    ("at_threshold", "over_threshold", "expected"),
    [
        (
            quiet(queue_length=70, priority_length=30),
            quiet(queue_length=70, priority_length=31),
            Finding(
                "queue_backed_up", "critical", 101, 100, "Audit queue backed up! Queue length: 101", SCALE
            ),
        ),
        (
            quiet(failures_last_minute=7),
            quiet(failures_last_minute=8),
            Finding("high_failure_rate", "critical", 8, 7, "High failure rate! Failures: 8/min", CHECK_DB),
        ),
        (
            quiet(dropped_last_minute=2, totals={"dropped": 40}),
            quiet(dropped_last_minute=3, totals={"dropped": 40}),
            Finding(
                "events_dropped", "warning", 3, 2, "Events being dropped! Total dropped: 40", MORE_WORKERS
            ),
        ),
        (
            quiet(dropped_last_minute=2, totals={}),
            quiet(dropped_last_minute=3, totals={}),
            Finding(
                "events_dropped", "warning", 3, 2, "Events being dropped! Total dropped: 0", MORE_WORKERS
            ),
        ),
        (
            quiet(workers_alive=0),
            quiet(workers_alive=0, priority_length=1),
            Finding("no_worker", "critical", 0, 1, "No audit worker is running", START),
        ),
        (
            quiet(overflow_last_minute=0),
            quiet(overflow_last_minute=1),
            Finding(
                "queue_overflow",
                "warning",
                1,
                0,
                "Queue overflowed: 1 events written directly to the database in the last minute",
                MORE_WORKERS,
            ),
        ),
        (
            quiet(failed_length=0),
            quiet(failed_length=1),
            Finding(
                "failed_events",
                "warning",
                1,
                0,
                "1 events rejected by the database wait in the failed list",
                INSPECT,
            ),
        ),
        (
            quiet(integrity_problems=0),
            quiet(integrity_problems=1),
            Finding(
                "integrity_violation",
                "critical",
                1,
                0,
                "Integrity violation! 1 problems in the latest seals",
                "Run `flask audit verify` to see which rows and seals; treat it as a security incident.",
            ),
        ),
    ],
    ids=[
        "backlog",
        "failures",
        "dropped",
        "dropped-no-total",
        "no-worker",
        "overflow",
        "failed",
        "integrity",
    ],
)
def test_each_finding_appears_just_past_its_threshold_whole(at_threshold, over_threshold, expected):
    """Equal to the threshold is fine, one more is a finding: rule, severity, value, threshold,
    the original design's text and the action, exactly."""
    thresholds = Thresholds(queue_length=100, failures_per_minute=7, dropped=2)
    assert findings(at_threshold, thresholds) == []
    assert findings(over_threshold, thresholds) == [expected]
    result = assess(over_threshold, thresholds)
    assert result.status == ("unhealthy" if expected.severity == "critical" else "degraded")
    assert result.issues == [expected.issue]
    assert result.recommendations == [{"severity": expected.severity, "message": expected.action}]


def test_thresholds_come_from_the_alert_keys(tmp_path):
    from flask import Flask

    from flask_audit.config import load_config

    config = load_config(
        Flask("h", instance_path=str(tmp_path)),
        {
            "AUDIT_ALERT_QUEUE_THRESHOLD": 11,
            "AUDIT_ALERT_FAILURES_PER_MINUTE": 12,
            "AUDIT_ALERT_DROPPED_THRESHOLD": 13,
        },
    )
    assert thresholds_of(config) == Thresholds(queue_length=11, failures_per_minute=12, dropped=13)
