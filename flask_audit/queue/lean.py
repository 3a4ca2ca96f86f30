"""A lean way to send the request path's few commands: each thread keeps one connection of the
client's pool and writes the packed commands to it directly.

redis-py's ``execute_command`` checks a connection out of the pool and back in, wraps the call
in its retry and observability layers, and dispatches events, for every command. Measured here
(redis-py 8.1, loopback), that cost 65 µs of CPU per command, against 42 µs for sending the same
command on the connection itself: more than the round trip. The request path needs none of it:
no retries (the breaker decides), one connection per thread, a few fixed commands. Errors keep
redis-py's meaning (``ConnectionError``, ``TimeoutError``, ``ResponseError``), a connection that
failed is closed and replaced at the next call, and a Sentinel-managed connection still asks
the Sentinels where the master is when it reconnects.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.connection import AbstractConnection


class LeanConnection:
    """Per-thread connections taken from ``client``'s pool and kept."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool = client.connection_pool
        self._local = threading.local()

    def _connection(self) -> AbstractConnection:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        connection = self.pool.get_connection()  # a new one after a fork: never the parent's socket
        self._local.held = (os.getpid(), connection)
        return connection

    def execute(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send ``commands`` in one write and read their replies in order. A reply that is an
        error is raised once every reply has been read (the connection stays in step)."""
        connection = self._connection()
        try:
            if len(commands) == 1:
                connection.send_command(*commands[0])
            else:
                connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            error: redis.ResponseError | None = None
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except redis.ResponseError as exc:
                    error = error or exc
                    replies.append(exc)
        except BaseException:
            self._local.held = None
            connection.disconnect()
            self.pool.release(connection)
            raise
        if error is not None:
            raise error
        return replies
