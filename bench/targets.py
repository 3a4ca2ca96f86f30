"""The load bench's targets, checked against a run's medians, so that whoever runs `make bench-load`
reads whether this machine's hour met them instead of working it out from the table.

The targets (for the whole stack on this 2-core machine): a direct event costs at most 150 µs on
sync workers and keeps 0.6 of plain throughput; a buffered one costs at most 50 µs and keeps
0.85 of it; on gthread workers with group commit, a direct event costs at most 1.5 times a
buffered one. Beside them, the floor: what waiting for a bare round trip to Redis costs by
itself, and so the least a direct event can cost against a buffered one on this machine; and
what a buffered event and that round trip cost together in one request.
"""

from __future__ import annotations

from itertools import product
from typing import Any

DIRECT, BUFFERED = "audit.log, direct push", "audit.log, AUDIT_BUFFERED"
GROUPED, BUFFERED_THREADS = "audit.log, direct push, gthread", "audit.log, AUDIT_BUFFERED, gthread"
PLAIN, PLAIN_THREADS = "plain route", "plain route, gthread"
#: no event: each request waits for one PING on a kept socket (bench/load_app.py's /round-trip)
FLOOR = "floor: a bare Redis PING a request, no event"
FLOOR_THREADS = FLOOR + ", gthread"
#: a buffered event, then the floor's PING, in one request (/audited-round-trip): a direct event's
#: two parts without its push, so that what they cost together is measured, not added up
FLOOR_EVENT = "floor with an event: a buffered event and a bare Redis PING a request"
FLOOR_EVENT_THREADS = FLOOR_EVENT + ", gthread"
#: (mode, figure, at most / at least, bound): "cost" is the audit's cost per event in µs,
#: "ratio" the throughput against the plain route of the same worker class
BOUNDS = (
    (DIRECT, "cost", "at most", 150.0),
    (DIRECT, "ratio", "at least", 0.6),
    (BUFFERED, "cost", "at most", 50.0),
    (BUFFERED, "ratio", "at least", 0.85),
)
#: a direct event with group commit against a buffered one, both on gthread workers
GROUPED_TIMES_BUFFERED = 1.5
#: what ``--pin`` adds to a mode's label; its twins are judged against the same bounds, apart
PINNED = ", pinned"


def target_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, this run's figure, "met" / "not met" / "cannot tell") for every target whose
    modes ran, then the same for their pinned twins (``--pin``); ``results`` maps a mode's label
    to its summary (``cost``, ``ratio``)."""
    return _rows(results, "") + _rows(results, PINNED)


def _rows(results: dict[str, dict[str, Any]], suffix: str) -> list[tuple[str, str, str]]:
    rows = []
    for mode, figure, sense, bound in BOUNDS:
        label = mode + suffix
        result = results.get(label)
        if result is None:
            continue
        value = result[figure]
        met = value <= bound if sense == "at most" else value >= bound
        shown = f"{value:.0f} µs" if figure == "cost" else f"{value:.2f}×"
        wanted = f"{bound:.0f} µs" if figure == "cost" else f"{bound:.2f}× plain throughput"
        # a cost at or below zero is the machine's drift outgrowing it, not a cost met
        verdict = "cannot tell" if figure == "cost" and value <= 0 else "met" if met else "not met"
        rows.append((f"{label}: {sense} {wanted}", shown, verdict))
    grouped, buffered = results.get(GROUPED + suffix), results.get(BUFFERED_THREADS + suffix)
    if grouped is not None and buffered is not None:
        target = (
            f"{GROUPED + suffix}: at most {GROUPED_TIMES_BUFFERED}× the cost of {BUFFERED_THREADS + suffix}"
        )
        if buffered["cost"] <= 0:  # the buffered cost was lost in the noise: no ratio to take
            rows.append(
                (target, f"{grouped['cost']:.0f} µs against {buffered['cost']:.0f} µs", "cannot tell")
            )
        else:
            times = grouped["cost"] / buffered["cost"]
            rows.append((target, f"{times:.1f}×", "met" if times <= GROUPED_TIMES_BUFFERED else "not met"))
    return rows


#: (worker class, its plain route, the floor, the direct mode, the buffered mode, the floor with
#: an event)
FLOORS = (
    ("sync", PLAIN, FLOOR, DIRECT, BUFFERED, FLOOR_EVENT),
    ("gthread", PLAIN_THREADS, FLOOR_THREADS, GROUPED, BUFFERED_THREADS, FLOOR_EVENT_THREADS),
)


def floor_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """For each worker class whose floor, direct and buffered modes ran (and again for their
    pinned twins, ``--pin``): what a bare round trip cost over the plain route, the web
    processes' part of it, the buffered event's cost, the least a direct event could then cost
    against a buffered one, what a buffered event and a bare round trip in one request cost
    against a buffered one ("not run" without that mode), what a direct event did cost, and the
    web processes' context switches a request over the plain route's for the floor, the direct
    event and the buffered one.

    A direct event pays what a buffered one does (building, the drain, the insert) and waits for
    Redis besides; group commit can share Redis's part of the wait among callers, but each caller
    still sleeps and wakes in its own web process. So the web processes' part of the floor, added
    to a buffered event, is the least any per-request confirmation costs here, whatever its code:
    (buffered + floor's web part) / buffered. The floor with an event measures the two together,
    which on threaded workers cost more than the sum of their parts."""
    rows = []
    for (kind, *labels), suffix in product(FLOORS, ("", PINNED)):
        plain, floor, direct, buffered, with_event = (results.get(label + suffix) for label in labels)
        if plain is None or floor is None or direct is None or buffered is None:
            continue
        web = floor["groups"]["gunicorn"] - plain["groups"]["gunicorn"]
        # the web processes' context switches a request over the plain route's: a count the
        # machine's hour does not move, where its CPU figures can swing by 100 µs
        switches = "/".join(
            f"{mode['switches']['gunicorn'] - plain['switches']['gunicorn']:+.2f}"
            for mode in (floor, direct, buffered)
        )
        rows.append(
            (
                kind + suffix,
                f"{floor['cost']:.0f} µs",
                f"{web:.0f} µs",
                f"{buffered['cost']:.0f} µs",
                _times_buffered(buffered["cost"] + web, buffered),
                "not run" if with_event is None else _times_buffered(with_event["cost"], buffered),
                _times_buffered(direct["cost"], buffered),
                switches,
            )
        )
    return rows


def _times_buffered(cost: float, buffered: dict[str, Any]) -> str:
    """``cost`` as a multiple of the buffered event's, or "cannot tell" when the buffered cost was
    lost in the noise (at or below zero), which gives no ratio."""
    if buffered["cost"] <= 0:
        return "cannot tell"
    return f"{cost / buffered['cost']:.1f}×"
