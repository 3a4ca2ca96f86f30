"""How counters are kept in Redis: 10-second buckets of an hour's history, and the batch-duration
histogram's bounds. Written by the queue's settle script, read by the monitoring."""

from __future__ import annotations

#: seconds a 10-second metrics bucket is kept: an hour of history plus a margin
BUCKET_TTL = 3900
#: seconds covered by one metrics bucket
BUCKET_SECONDS = 10
#: upper bounds (seconds) of the batch-duration histogram, as Prometheus buckets
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def histogram_bucket(seconds: float) -> str:
    """The histogram field a duration is counted in: the smallest bound that holds it."""
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            return f"le:{bound}"
    return "le:+Inf"


def bucket_key(prefix: str, at: float) -> str:
    """The key of the 10-second metrics bucket that holds time ``at``."""
    return f"{prefix}metrics:{int(at) // BUCKET_SECONDS}"
