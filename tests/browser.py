"""Headless Chromium for the browser tests (the ``chromium`` fixture, in conftest, finds it): a
render that returns the page's DOM after its scripts ran, and the browser's log."""

from __future__ import annotations

import subprocess

from tests.processes import CHROMIUM_FLAGS

#: headless Chromium, logging the page's console to stderr, given time to run the page's script
BROWSER = [*CHROMIUM_FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000"]


def render(chromium: str, url: str, tmp_path) -> tuple[str, str]:
    result = subprocess.run(
        [chromium, *BROWSER, f"--user-data-dir={tmp_path}/chromium", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout, result.stderr
