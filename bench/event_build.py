"""What building an event costs: validation, repair, redaction and serialisation once, side by
side with a baseline of serialising the same fields with no checks at all (same run).

``python bench/event_build.py [--n 20000] [--against REV]``; prints a table in microseconds per
event. ``--against REV`` (a git revision, e.g. the last release) also builds the same events with
that revision's package, loaded beside this one in the same process, and alternates the two
round by round, so that a noisy machine affects both alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.revisions import package_of
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


def load_revision(rev: str):
    """The ``build_event`` of revision ``rev``: its package extracted under another name (its
    imports are relative, so it loads beside this one)."""
    target = package_of(rev)
    (target / "flask_audit").rename(target / "flask_audit_then")
    sys.path.insert(0, str(target))
    for module in ("flask_audit_then.events.event", "flask_audit_then.event"):
        try:
            return importlib.import_module(module).build_event
        except ModuleNotFoundError:
            continue
    raise SystemExit(f"no build_event in {rev}")


def paired(fns: dict, kwargs_list: list[dict], rounds: int = 30) -> dict[str, float]:
    """Median µs per event of each function, the functions alternating round by round."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter_ns()
            for kwargs in kwargs_list:
                fn(kwargs)
            samples[name].append((time.perf_counter_ns() - start) / len(kwargs_list) / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--against", help="a git revision to compare with, in the same process")
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
    if args.against:
        then = load_revision(args.against)
        then_keys = ("password", "passwd", "secret", "token", "api_key", "authorization", "cookie")
        sample = plain[:2000]
        result = paired(
            {
                f"{args.against}: build_event + to_entry": lambda k: then(
                    **k, redact_keys=then_keys
                ).to_entry(),
                f"{args.against}: build_event only": lambda k: then(**k, redact_keys=then_keys),
                "this tree: build_event (entry included)": ours,
            },
            sample,
        )
        print(f"\nagainst {args.against}, alternating, median of 30 rounds of {len(sample):,} events\n")
        print("| measure | µs per event |")
        print("|---|---:|")
        for name, value in result.items():
            print(f"| {name} | {value:.1f} |")
    json.dump({name: value for name, value in rows}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
