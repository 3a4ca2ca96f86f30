"""GET /metrics: the shared counters in Prometheus's text format, built from one Redis snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from flask_audit.events.event import OUTCOMES
from flask_audit.monitoring.buckets import DURATION_BUCKETS
from flask_audit.monitoring.metrics import Snapshot

#: (metric name without _total, totals field, help)
COUNTERS = (
    ("audit_events_enqueued", "enqueued", "Events pushed onto the queue."),
    ("audit_events_inserted", "inserted", "Events the workers stored in the database."),
    ("audit_events_failed", "failed", "Events the database refused (filed in the failed list)."),
    (
        "audit_events_overflow",
        "overflow",
        "Events written straight to the database because the queue was full.",
    ),
    (
        "audit_events_dropped",
        "dropped",
        "Events dropped because the queue was full (overflow policy 'drop').",
    ),
    (
        "audit_events_spooled",
        "spooled",
        "Events written to the local spool while Redis and the database were down.",
    ),
    (
        "audit_events_write_through",
        "write_through",
        "Events written straight to the database because Redis was down.",
    ),
    (
        "audit_events_unreplicated",
        "unreplicated",
        "Events pushed but not confirmed by the replicas in time, so also written to the database.",
    ),
    ("audit_critical_writes", "critical", "Critical events written synchronously."),
    ("audit_db_statements", "db_statements", "INSERT and COPY statements the workers committed."),
)


class SnapshotCollector:
    """A one-off collector over a snapshot already read (one Redis round trip per scrape)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        for name, value, doc in (
            ("audit_queue_length", s.waiting, "Events waiting in the queue."),
            ("audit_failed_length", s.failed_length, "Events waiting in the failed list."),
            ("audit_batch_size", s.current_batch_size, "Batch size the clock picked last."),
            ("audit_workers_alive", s.workers_alive, "Worker processes with a fresh heartbeat."),
            (
                "audit_integrity_last_verified_seal",
                s.integrity_last_seal,
                "The last seal the clock's periodic verification checked (0: none yet).",
            ),
            (
                "audit_integrity_problems",
                s.integrity_problems,
                "Problems that verification found in the latest seals (tampering: alert).",
            ),
            ("audit_integrity_unsealed_rows", s.unsealed_rows, "Rows stored after the last seal."),
            (
                "audit_stream_lag_seconds",
                s.stream_lag_seconds,
                "Age of the oldest event the log stream has not delivered (0: caught up).",
            ),
            (
                "audit_stream_undelivered",
                s.stream_undelivered,
                "Stored events the log stream has not delivered.",
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
        yield CounterMetricFamily(
            "audit_stream_delivered", "Events the log stream delivered.", value=s.stream_delivered
        )
        yield CounterMetricFamily(
            "audit_stream_failures",
            "Failed attempts of the log stream (each retried).",
            value=s.stream_failures,
        )
        for name, field, doc in COUNTERS:
            yield CounterMetricFamily(name, doc, value=s.totals.get(field, 0))
        outcomes = CounterMetricFamily(
            "audit_events_by_outcome", "Events stored, by how the action ended.", labels=["outcome"]
        )
        for outcome in OUTCOMES:
            outcomes.add_metric([outcome], s.totals.get(f"outcome_{outcome}", 0))
        yield outcomes
        histogram = s.batch_seconds
        cumulative, buckets = 0.0, []
        for bound in DURATION_BUCKETS:
            cumulative += histogram.get(f"le:{bound}", 0.0)
            buckets.append((str(bound), cumulative))
        buckets.append(("+Inf", cumulative + histogram.get("le:+Inf", 0.0)))
        yield HistogramMetricFamily(
            "audit_batch_duration_seconds",
            "Time to write one batch, from claim to acknowledgement.",
            buckets=buckets,
            sum_value=histogram.get("sum", 0.0),
        )


def exposition(snapshot: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
