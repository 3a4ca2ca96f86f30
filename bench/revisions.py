"""Another revision's package beside this tree's, for benchmarks that compare the two."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_of(rev: str) -> Path:
    """A new directory holding revision ``rev``'s ``flask_audit`` (from ``git archive``)."""
    archive = subprocess.run(
        ["git", "archive", rev, "flask_audit"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    target = Path(tempfile.mkdtemp(prefix="audit-rev-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target
