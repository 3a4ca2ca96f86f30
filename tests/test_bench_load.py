"""The load bench's pause between requests: wrk gets a script only when a pause is asked for."""

from __future__ import annotations

import re

from bench.load import think_script


def test_a_pause_gives_wrk_a_delay_of_that_many_milliseconds(tmp_path):
    options = think_script(3, tmp_path)
    assert options[0] == "-s"
    script = tmp_path / options[1]
    assert re.fullmatch(r"function delay\(\)\s+return 3\s+end\s*", script.read_text())


def test_no_pause_runs_wrk_as_fast_as_the_server_answers(tmp_path):
    assert think_script(0, tmp_path) == []
    assert list(tmp_path.iterdir()) == []
