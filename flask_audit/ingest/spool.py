"""A local append-only file for events when neither Redis nor the database will take them."""

from __future__ import annotations

import fcntl
import glob
import os
import time
from collections.abc import Callable


class Spool:
    """JSON-lines file of queue entries, fsync'd on every append, replayed when things recover."""

    def __init__(self, path: str) -> None:
        self.path = path

    def append(self, entry: bytes) -> None:
        """Append one entry durably; raises OSError when the disk will not take it."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, entry + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> int:
        """Entries waiting in the spool (including a replay that was interrupted)."""
        total = 0
        for path in self._files():
            try:
                with open(path, "rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            except FileNotFoundError:  # a replay finished with it since it was listed
                continue
        return total

    def replay(self, deliver: Callable[[list[bytes]], None], chunk: int = 500) -> int:
        """Hand every spooled entry to ``deliver`` in chunks; returns how many were delivered.

        The file is renamed first, so appends made meanwhile go to a new file. A chunk that
        ``deliver`` refuses (raises) stops the replay and the rest stays on disk; entries already
        delivered may be delivered again next time, which the idempotent insert absorbs.
        """
        if os.path.exists(self.path):
            try:
                # a name no other replay has used: a kept rest of an earlier one must not be replaced
                os.rename(self.path, f"{self.path}.replay-{os.getpid()}-{time.time_ns()}")
            except FileNotFoundError:
                pass  # another process took it first
        delivered = 0
        for path in self._files(replaying_only=True):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # another replay delivered it since it was listed
                continue
            try:
                if _claimed(fd, path):
                    delivered += self._deliver_file(fd, path, deliver, chunk)
            finally:
                os.close(fd)  # releases the claim, after the file is gone or kept
        return delivered

    def _deliver_file(self, fd: int, path: str, deliver: Callable[[list[bytes]], None], chunk: int) -> int:
        with os.fdopen(os.dup(fd), "rb") as fh:
            lines = [line.rstrip(b"\n") for line in fh if line.strip()]
        for start in range(0, len(lines), chunk):
            try:
                deliver(lines[start : start + chunk])
            except Exception:
                self._keep(path, lines[start:])
                raise
        os.remove(path)
        return len(lines)

    def _keep(self, path: str, lines: list[bytes]) -> None:
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"".join(line + b"\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _files(self, replaying_only: bool = False) -> list[str]:
        files = sorted(glob.glob(glob.escape(self.path) + ".replay-*"))
        files = [f for f in files if not f.endswith(".tmp")]
        if not replaying_only and os.path.exists(self.path):
            files.append(self.path)
        return files


def _claimed(fd: int, path: str) -> bool:
    """Claim a replay file for this replay: an exclusive lock on it, taken without waiting, and
    the path still naming the locked file. Two replays (threads or processes) listing the same
    file would otherwise both deliver it, and both count it. False when another replay holds it,
    or has delivered and removed (or kept the rest of) it since it was opened."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
