"""Re-apply the six breakages issue 11 found unnoticed, one at a time in a copy of the tree, and run
the tests that must now fail. Prints one line per breakage; exit 1 if any breakage still passes.

    python tools/breakages.py            # needs the real Redis and PostgreSQL, like make test
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Breakage:
    what: str
    #: (file, text, replacement): each text must occur in the file
    edits: tuple[tuple[str, str, str], ...]
    tests: tuple[str, ...]


BREAKAGES = (
    Breakage(
        "audit.log no longer passes redact_keys and max_metadata_bytes to build_event",
        (
            ("flask_audit/extension.py", "max_metadata_bytes=runtime.config.max_metadata_bytes,", ""),
            ("flask_audit/extension.py", "redact_keys=runtime.config.redact_keys,", ""),
        ),
        ("tests/test_extension.py", "tests/test_hostile_input.py", "tests/test_event.py"),
    ),
    Breakage(
        "the breaker never closes again",
        (
            (
                "flask_audit/ingest/breaker.py",
                "was_open, self._failures = self._failures > 0, 0",
                "was_open = self._failures > 0",
            ),
        ),
        ("tests/test_extension.py", "tests/integration/test_breaker.py"),
    ),
    Breakage(
        "the queue_overflow and failed_events health findings removed",
        (
            ("flask_audit/monitoring/health.py", "if snapshot.overflow_last_minute > 0:", "if False:"),
            ("flask_audit/monitoring/health.py", "if snapshot.failed_length > 0:", "if False:"),
        ),
        ("tests/test_health.py", "tests/test_routes.py", "tests/test_alerts.py"),
    ),
    Breakage(
        "export ignores every filter but --user-id; failed list ignores --limit",
        (
            (
                "flask_audit/cli/operate.py",
                "if v is not None and k in EQUALITY_FILTERS}",
                "if v is not None and k == 'user_id'}",
            ),
            ("flask_audit/cli/operate.py", "_failed().records(limit)", "_failed().records()"),
        ),
        ("tests/test_operate.py", "tests/integration/test_promises.py"),
    ),
    Breakage(
        "no range checks: AUDIT_MAX_PENDING_DRAINS, AUDIT_VISIBILITY_TIMEOUT_SECONDS, AUDIT_PARTITIONING",
        (
            ("flask_audit/config.py", "if self.minimum is not None and parsed < self.minimum:", "if False:"),
            ("flask_audit/config.py", "if self.maximum is not None and parsed > self.maximum:", "if False:"),
            ("flask_audit/config.py", "    if text not in key.choices:", "    if False:"),
        ),
        ("tests/test_config.py",),
    ),
    Breakage(
        "Clock.purge no longer creates the months ahead",
        (("flask_audit/pipeline/clock.py", "            ensure_partitions(store)\n", "            pass\n"),),
        ("tests/test_partitions.py", "tests/test_operate.py", "tests/integration/test_promises.py"),
    ),
)


def run(breakage: Breakage, workdir: Path) -> tuple[int, int, float]:
    """Apply the edits in a fresh copy; returns (failed, passed, seconds) of its tests."""
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    skip = shutil.ignore_patterns(".venv", ".git", "mutants", "instance", "*.pyc")
    shutil.copytree(ROOT, tree, ignore=skip)
    for name, text, replacement in breakage.edits:
        path = tree / name
        source = path.read_text()
        if text not in source:
            raise SystemExit(f"{name}: the code changed, update the breakage {breakage.what!r}: {text!r}")
        path.write_text(source.replace(text, replacement, 1))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not faults", *breakage.tests],
        cwd=tree,
        env=dict(os.environ, PYTHONPATH=str(tree)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    return count(summary, "failed"), count(summary, "passed"), time.monotonic() - started


def count(summary: str, kind: str) -> int:
    """The number before ``kind`` in pytest's last line ("2 failed, 40 passed in 3.1s")."""
    words = summary.replace(",", " ").split()
    return sum(int(n) for n, word in itertools.pairwise(words) if word == kind and n.isdigit())


def main() -> int:
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="flask-audit-breakages-") as tmp:
        for breakage in BREAKAGES:
            failed, passed, seconds = run(breakage, Path(tmp))
            caught = failed > 0
            survivors += not caught
            verdict = "caught" if caught else "NOT CAUGHT"
            print(f"{verdict:<10} {failed:>3} failed {passed:>4} passed {seconds:>5.0f} s  {breakage.what}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
