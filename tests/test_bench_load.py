"""The load bench's pause between requests (wrk gets a script only when a pause is asked for), and
its pinned twins of the modes (``--pin``): the same gunicorn options, with the settings that hold
each worker to a core, and ``taskset`` giving each of two servers its own; and a wrk run whose
answers were errors, refused; the floor's table, printed for each tree whose modes ran."""

from __future__ import annotations

import re
import socket

import pytest

from bench.load import (
    GTHREAD,
    PINNED_CONFIG,
    SYNC,
    mine,
    pinned,
    print_floors,
    refuse_errors,
    think_script,
    web_commands,
)
from bench.targets import BUFFERED_THREADS, FLOOR_EVENT_THREADS, FLOOR_THREADS, GROUPED, PLAIN_THREADS


def test_a_pause_gives_wrk_a_delay_of_that_many_milliseconds(tmp_path):
    options = think_script(3, tmp_path)
    assert options[0] == "-s"
    script = tmp_path / options[1]
    assert re.fullmatch(r"function delay\(\)\s+return 3\s+end\s*", script.read_text())


def test_no_pause_runs_wrk_as_fast_as_the_server_answers(tmp_path):
    assert think_script(0, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_pinned_twin_keeps_its_modes_route_and_settings_under_a_label_of_its_own():
    mode = ("audit.log, AUDIT_BUFFERED", "/audited", {"AUDIT_BUFFERED": "true"}, SYNC)
    label, route, extra, web = pinned(mode)
    assert (label, route, extra) == (
        "audit.log, AUDIT_BUFFERED, pinned",
        "/audited",
        {"AUDIT_BUFFERED": "true"},
    )
    assert mine([mode, pinned(mode)], web) == [pinned(mode)]  # its own kind, with its own plain route
    assert mine([mode, pinned(mode)], SYNC) == [mode]


@pytest.fixture
def socks():
    """Two sockets to name in the commands (only their descriptors are read)."""
    made = [socket.socket(), socket.socket()]
    yield made
    for sock in made:
        sock.close()


def test_pinned_sync_workers_run_under_one_gunicorn_with_the_pinning_settings(socks):
    (plain,) = web_commands(SYNC, socks[:1])
    (held,) = web_commands(pinned(("p", "/plain", {}, SYNC))[3], socks[:1])
    assert held == [*plain[:-1], "--config", PINNED_CONFIG, plain[-1]]
    assert "--workers" in held and held[held.index("--workers") + 1] == "2"


def test_two_pinned_servers_each_start_on_a_core_of_their_own(socks):
    web = pinned(("p", "/plain", {}, GTHREAD))[3]
    first, second = web_commands(web, socks)
    assert first[:3] == ["taskset", "-c", "0"] and second[:3] == ["taskset", "-c", "1"]
    assert f"fd://{socks[0].fileno()}" in first and f"fd://{socks[1].fileno()}" in second
    for command in (first, second):
        assert command[command.index("--workers") + 1] == "1"
        assert "--pin-to-core" not in command  # the bench's marker never reaches gunicorn
        assert command[command.index("--config") + 1] == PINNED_CONFIG
    assert all("taskset" not in command for command in web_commands(GTHREAD, socks))


WRK_REPORT = """Running 10s test @ http://127.0.0.1:8000/round-trip
  2 threads and 8 connections
  48000 requests in 10.00s, 7.1MB read
{errors}Requests/sec:   4800.00
"""


def test_a_wrk_run_with_error_answers_is_refused_not_measured():
    with pytest.raises(RuntimeError, match="Non-2xx or 3xx responses: 12"):
        refuse_errors("http://x/round-trip", WRK_REPORT.format(errors="  Non-2xx or 3xx responses: 12\n"))
    refuse_errors("http://x/plain", WRK_REPORT.format(errors=""))  # every answer 2xx: no complaint


def test_the_floor_table_is_printed_for_each_tree_that_ran_its_modes(capsys):
    def result(label, cost, gunicorn, switches):
        return {
            "label": label,
            "cost": cost,
            "groups": {"gunicorn": gunicorn},
            "switches": {"gunicorn": switches},
        }

    modes = [
        (PLAIN_THREADS, 0.0, 400.0, 4.8),
        (FLOOR_THREADS, 300.0, 520.0, 7.9),
        (GROUPED, 240.0, 500.0, 8.4),
        (BUFFERED_THREADS, 60.0, 430.0, 5.5),
        (FLOOR_EVENT_THREADS, 228.0, 560.0, 8.6),
    ]
    results = [result("old: " + label, *figures) for label, *figures in modes]
    results += [result("new: " + label, *figures) for label, *figures in modes[:3]]  # no buffered mode
    print_floors({"old: ": None, "new: ": None}, results)
    printed = capsys.readouterr().out
    assert "old: the floor: a bare Redis round trip" in printed and "new: the floor" not in printed
    assert (
        "| least a direct event can cost | a buffered event and a PING cost | a direct event cost |"
        in printed
    )
    assert "| gthread | 300 µs | 120 µs | 60 µs | 3.0× | 3.8× | 4.0× | +3.10/+3.60/+0.70 |" in printed
