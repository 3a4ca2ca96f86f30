"""What building an event costs: validation, repair, redaction and serialisation once, side by
side with a baseline of serialising the same fields with no checks at all (same run).

``python bench/event_build.py [--n 20000]``; prints a table in microseconds per event.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import realistic_kwargs
from flask_audit.config import DEFAULT_REDACT_KEYS
from flask_audit.events.event import build_event
from flask_audit.events.ids import new_event_id

HOSTILE = {
    "description": "x\ud800y\x00z\x1b[2J" * 20,
    "user_agent": "agent\x00" + "u" * 900,
    "resource_id": "r" * 400,
    "ip_address": "fe80::1%" + "z" * 100,
    "metadata": {"api-Key": "s", "nested": [{"Cookie": "c"}, ("Authorization", "t")], "nan": float("nan")},
}


def per_event_us(fn, kwargs_list) -> float:
    """Median of 5 runs of the whole list, in microseconds per event."""
    runs = []
    for _ in range(5):
        start = time.perf_counter_ns()
        for kwargs in kwargs_list:
            fn(kwargs)
        runs.append((time.perf_counter_ns() - start) / len(kwargs_list) / 1000)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    plain = [realistic_kwargs(i) for i in range(args.n)]
    hostile = [{**k, **HOSTILE} for k in plain[: args.n // 4]]

    def baseline(kwargs):
        return orjson.dumps({"event_id": new_event_id(), **kwargs}, option=orjson.OPT_NON_STR_KEYS)

    def ours(kwargs):
        return build_event(**kwargs, redact_keys=DEFAULT_REDACT_KEYS).to_entry()

    rows = [
        ("baseline: uuid7 + orjson.dumps of the fields, no checks", per_event_us(baseline, plain)),
        ("build_event + entry, realistic event, default redaction", per_event_us(ours, plain)),
        ("build_event + entry, hostile event (every field repaired)", per_event_us(ours, hostile)),
    ]
    print(f"{args.n:,} realistic events ({len(hostile):,} hostile), median of 5 runs\n")
    print("| measure | µs per event | vs baseline |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.1f} | {value / rows[0][1]:.1f}x |")
    json.dump({name: value for name, value in rows}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
