"""The load bench's verdict on its targets follows the figures, either way."""

from __future__ import annotations

from bench.targets import (
    BUFFERED,
    BUFFERED_THREADS,
    DIRECT,
    FLOOR,
    FLOOR_EVENT,
    FLOOR_EVENT_THREADS,
    FLOOR_THREADS,
    GROUPED,
    PINNED,
    PLAIN,
    PLAIN_THREADS,
    floor_rows,
    target_rows,
)


def verdicts(results):
    return [verdict for _, _, verdict in target_rows(results)]


def test_figures_within_the_targets_are_met():
    results = {
        DIRECT: {"cost": 130.0, "ratio": 0.70},
        BUFFERED: {"cost": 41.0, "ratio": 0.90},
        GROUPED: {"cost": 60.0, "ratio": 0.80},
        BUFFERED_THREADS: {"cost": 49.0, "ratio": 0.87},
    }
    assert verdicts(results) == ["met"] * 5
    rows = target_rows(results)
    assert rows[0][1] == "130 µs" and rows[1][1] == "0.70×" and rows[4][1] == "1.2×"


def test_each_target_missed_says_so():
    results = {
        DIRECT: {"cost": 151.0, "ratio": 0.59},
        BUFFERED: {"cost": 51.0, "ratio": 0.84},
        GROUPED: {"cost": 142.0, "ratio": 0.67},
        BUFFERED_THREADS: {"cost": 49.0, "ratio": 0.87},
    }
    assert verdicts(results) == ["not met"] * 5


def test_the_bounds_themselves_are_met():
    results = {DIRECT: {"cost": 150.0, "ratio": 0.6}, BUFFERED: {"cost": 50.0, "ratio": 0.85}}
    assert verdicts(results) == ["met"] * 4


def test_modes_that_did_not_run_have_no_row_and_a_buffered_cost_lost_in_noise_cannot_tell():
    assert target_rows({DIRECT: {"cost": 100.0, "ratio": 0.7}})[0][0].startswith(DIRECT)
    assert len(target_rows({DIRECT: {"cost": 100.0, "ratio": 0.7}})) == 2
    assert target_rows({GROUPED: {"cost": 100.0, "ratio": 0.7}}) == []
    rows = target_rows(
        {GROUPED: {"cost": 100.0, "ratio": 0.7}, BUFFERED_THREADS: {"cost": -3.0, "ratio": 1.0}}
    )
    assert rows == [(rows[0][0], "100 µs against -3 µs", "cannot tell")]


def test_a_cost_at_or_below_zero_is_not_called_met():
    results = {DIRECT: {"cost": 0.0, "ratio": 0.7}, BUFFERED: {"cost": -57.0, "ratio": 1.11}}
    assert verdicts(results) == ["cannot tell", "met", "cannot tell", "met"]


def test_pinned_twins_are_judged_apart_after_the_modes_they_repeat():
    results = {
        GROUPED: {"cost": 300.0, "ratio": 0.67},
        BUFFERED_THREADS: {"cost": 100.0, "ratio": 0.87},
        GROUPED + PINNED: {"cost": 140.0, "ratio": 0.82},
        BUFFERED_THREADS + PINNED: {"cost": 100.0, "ratio": 0.88},
    }
    rows = target_rows(results)
    assert [(row[1], row[2]) for row in rows] == [("3.0×", "not met"), ("1.4×", "met")]
    assert rows[1][0] == f"{GROUPED}, pinned: at most 1.5× the cost of {BUFFERED_THREADS}, pinned"


def summary(cost, gunicorn, switches=0.0):
    return {"cost": cost, "ratio": 0.7, "groups": {"gunicorn": gunicorn}, "switches": {"gunicorn": switches}}


#: a gthread run with the floor: 120 µs of the round trip's 300 in the web processes
THREADED = {
    PLAIN_THREADS: summary(0.0, 400.0, 4.8),
    FLOOR_THREADS: summary(300.0, 520.0, 7.9),
    GROUPED: summary(240.0, 500.0, 8.4),
    BUFFERED_THREADS: summary(60.0, 430.0, 5.5),
}


def test_the_floor_adds_the_web_processes_part_of_a_bare_round_trip_to_a_buffered_event():
    assert floor_rows(THREADED) == [
        ("gthread", "300 µs", "120 µs", "60 µs", "3.0×", "not run", "4.0×", "+3.10/+3.60/+0.70")
    ]


def test_the_floor_with_an_event_is_set_against_a_buffered_event():
    with_event = {**THREADED, FLOOR_EVENT_THREADS: summary(228.0, 560.0, 8.6)}
    assert floor_rows(with_event)[0][4:7] == ("3.0×", "3.8×", "4.0×")
    sync = {
        PLAIN: summary(0.0, 300.0),
        FLOOR: summary(150.0, 380.0),
        DIRECT: summary(140.0, 370.0),
        BUFFERED: summary(40.0, 320.0),
        FLOOR_EVENT_THREADS: summary(228.0, 560.0),  # another worker class's: not this row's
    }
    assert floor_rows(sync)[0][5] == "not run"


def test_a_worker_class_without_all_four_modes_gives_no_floor_row():
    results = {
        PLAIN: summary(0.0, 300.0),
        FLOOR: summary(150.0, 380.0),
        DIRECT: summary(140.0, 370.0),
        BUFFERED: summary(40.0, 320.0),
        PLAIN_THREADS: summary(0.0, 400.0),
        FLOOR_THREADS: summary(300.0, 520.0),
    }
    assert [row[0] for row in floor_rows(results)] == ["sync"]
    assert floor_rows(results)[0][4:7] == ("3.0×", "not run", "3.5×")


def test_a_buffered_cost_lost_in_the_noise_gives_no_floor_ratio():
    results = {
        PLAIN: summary(0.0, 300.0),
        FLOOR: summary(150.0, 380.0),
        DIRECT: summary(140.0, 370.0),
        BUFFERED: summary(-5.0, 320.0),
        FLOOR_EVENT: summary(190.0, 400.0),
    }
    assert floor_rows(results)[0][4:7] == ("cannot tell", "cannot tell", "cannot tell")


def test_pinned_twins_get_a_floor_row_of_their_own():
    twins = {
        label + PINNED: summary(value["cost"] / 2, value["groups"]["gunicorn"] - 30)
        for label, value in THREADED.items()
    }
    twins[FLOOR_THREADS + PINNED] = summary(100.0, 400.0)  # 30 µs of the web processes' over plain
    rows = floor_rows({**THREADED, **twins})
    assert [row[0] for row in rows] == ["gthread", "gthread, pinned"]
    assert rows[1][1:-1] == ("100 µs", "30 µs", "30 µs", "2.0×", "not run", "4.0×")
