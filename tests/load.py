"""Steady HTTP load for the tests that break things under it (failover, many hosts): threads that
POST /api/v1/keys with unique request ids and note the ones answered 201, and when."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

CLIENTS = 4


def answers(base: str) -> bool:
    """Whether the server at ``base`` answers its health route (503 counts: it answers)."""
    try:
        with urllib.request.urlopen(base + "/api/v1/monitoring/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


class Load:
    """Threads that POST /api/v1/keys with unique request ids and note the ones answered 201."""

    def __init__(self, base: str, tag: str = "load") -> None:
        self.base = base
        self.tag = tag
        #: request id -> when its 201 came (monotonic)
        self.ok: dict[str, float] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self, number: int) -> None:
        sequence = 0
        while not self._stop.is_set():
            request_id = f"{self.tag}-{number}-{sequence}"
            sequence += 1
            request = urllib.request.Request(
                self.base + "/api/v1/keys",
                data=b'{"name": "k"}',
                method="POST",
                headers={"Content-Type": "application/json", "X-Request-ID": request_id, "X-User-ID": "7"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 201:
                        self.ok[request_id] = time.monotonic()
                    else:
                        self.errors.append(f"{request_id}: {response.status}")
            except (urllib.error.URLError, OSError) as exc:
                self.errors.append(f"{request_id}: {exc}")
