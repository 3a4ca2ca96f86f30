"""A lean way to send the request path's few commands: connections of the client's pool are kept
(idle ones in a shared list) and talked to through their sockets directly.

redis-py's ``execute_command`` checks a connection out of the pool and back in, wraps the call
in its retry and observability layers, and dispatches events, for every command; its
connection's own send and read add a layer more. Measured here (redis-py 8.1, loopback, one
thread), a one-entry push cost 35 µs of CPU through the connection's methods and 27 µs written
to the socket and read with hiredis, out of 24 µs that a bare PING round trip costs; under load
Python's share of that costs two to three times more. The request path needs none of those
layers: no retries (the breaker decides), a kept connection per call in flight, a few fixed
commands.

The pool still makes the connection (address, Sentinel discovery, AUTH, SELECT, TLS), so the
socket is ready to use. Errors keep redis-py's meaning (``ConnectionError``, ``TimeoutError``,
``ResponseError`` and its subclasses); a connection that failed, or that answered READONLY (a
master demoted by a failover), is closed and replaced at the next call, which asks the
Sentinels again. A connection without a real socket (fakeredis) goes through its own methods.
"""

from __future__ import annotations

import _socket
import socket
import struct
from typing import Any

import hiredis
import redis
from redis._parsers.base import BaseParser
from redis.connection import AbstractConnection
from redis.exceptions import InvalidResponse, ReadOnlyError

from flask_audit import forks

#: bytes asked of the socket per read; a push's reply is a few bytes
READ_SIZE = 65536
#: what the reader returns while a reply is incomplete (RESP3, which redis-py may speak, has false)
_INCOMPLETE = object()


class PackedCommand:
    """A command whose wire form is made here rather than by hiredis: the push repeats the same
    leading arguments on every request (its script, keys and limits change every ten seconds at
    most), so their bytes are made once and only the entries are added (hiredis packing the
    whole command took a quarter of the push's instructions). ``args`` is the command itself,
    for a connection without a real socket."""

    __slots__ = ("lead", "packed", "tail")

    def __init__(self, lead: LeadingArguments, tail: list[bytes]) -> None:
        self.lead, self.tail = lead, tail
        parts = [b"*%d\r\n" % (len(lead.args) + len(tail)), lead.packed]
        for item in tail:
            if type(item) is not bytes:  # not a queue entry: let hiredis encode it all
                self.packed = hiredis.pack_command(self.args)
                return
            parts += (b"$%d\r\n" % len(item), item, b"\r\n")
        self.packed = b"".join(parts)

    @property
    def args(self) -> tuple[Any, ...]:
        return (*self.lead.args, *self.tail)


class LeadingArguments:
    """The first arguments of a command, with their RESP bulk strings made once."""

    __slots__ = ("args", "packed")

    def __init__(self, *args: str | bytes | int) -> None:
        self.args = args
        encoded = [item if type(item) is bytes else str(item).encode() for item in args]
        self.packed = b"".join(b"$%d\r\n%s\r\n" % (len(item), item) for item in encoded)


class _Held:
    """A kept connection, with its socket and reply reader when it has a real socket."""

    __slots__ = ("connection", "reader", "sock")

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        sock = getattr(connection, "_sock", None)
        self.sock: socket.socket | None = sock if isinstance(sock, socket.socket) else None
        # a plain socket of the standard library's: not TLS, and not gevent's patched socket,
        # which waits in gevent's hub where the kernel's timeout never fires (it keeps its own)
        if type(sock) is socket.socket and isinstance(sock, _socket.socket):
            _kernel_timeouts(sock)
        # an error reply comes back as redis-py's exception for it (NoScriptError, ReadOnlyError...)
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error, notEnoughData=_INCOMPLETE
        )


def _kernel_timeouts(sock: socket.socket) -> None:
    """Let the kernel keep the socket's timeout: Python's own timeout polls the socket before
    every send and every receive, two system calls more per push. A plain socket only (TLS keeps
    Python's timeouts); one caller at a time uses it from now on."""
    timeout = sock.gettimeout()
    if timeout is None:
        return
    total = max(1, round(timeout * 1_000_000))  # µs; never 0, which the kernel reads as no timeout
    value = struct.pack("ll", total // 1_000_000, total % 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    sock.settimeout(None)


class LeanConnection:
    """Connections taken from ``client``'s pool and kept, idle ones in a list that every thread
    takes from and gives back to.

    Not one per thread: a server that runs each request on a thread of its own, as Flask's
    development server does, would take a new connection for every request and never
    give it back, until the pool refused more ("Too many connections") and every push fell
    back. Taking from the list and giving back are single list operations, atomic under the GIL,
    so the request path pays no lock; the list holds as many connections as calls ever ran at
    once."""

    def __init__(self, client: redis.Redis) -> None:
        self.pool = client.connection_pool
        self._idle: list[_Held] = []
        self._generation = forks.generation

    def execute(self, *commands: tuple[Any, ...] | PackedCommand) -> list[Any]:
        """Send ``commands`` in one write and read their replies in order. A reply that is an
        error is raised once every reply has been read (the connection stays in step)."""
        if self._generation != forks.generation:  # a forked child: never the parent's sockets
            self._idle, self._generation = [], forks.generation
        idle = self._idle
        try:  # written out, not a method: this runs on every request
            held = idle.pop()
        except IndexError:
            held = _Held(self.pool.get_connection())
        try:
            if held.sock is not None:
                replies = self._exchange(held, commands)
            else:
                replies = self._through(held, commands)
        except BaseException:
            self._drop(held)
            raise
        for reply in replies:  # a loop, not a generator: this runs on every request
            if isinstance(reply, redis.ResponseError):
                if isinstance(reply, ReadOnlyError):  # a demoted master: ask for the new one next time
                    self._drop(held)
                else:
                    idle.append(held)
                raise reply
        idle.append(held)
        return replies

    @staticmethod
    def _exchange(held: _Held, commands: tuple[tuple[Any, ...] | PackedCommand, ...]) -> list[Any]:
        """Write the packed commands to the socket and read one reply per command."""
        sock, reader = held.sock, held.reader
        assert sock is not None
        data = b"".join([c.packed if type(c) is PackedCommand else hiredis.pack_command(c) for c in commands])
        try:
            sock.sendall(data)
            replies: list[Any] = []
            while len(replies) < len(commands):
                reply = reader.gets()
                if reply is _INCOMPLETE:
                    chunk = sock.recv(READ_SIZE)
                    if not chunk:
                        raise redis.ConnectionError("Connection closed by server.")
                    reader.feed(chunk)
                else:
                    replies.append(reply)
        except (TimeoutError, BlockingIOError):  # Python's timeout, or the kernel's (EAGAIN)
            raise redis.TimeoutError("Timeout reading from socket") from None
        except OSError as exc:
            raise redis.ConnectionError(f"Error while talking to Redis: {exc}") from None
        return replies

    @staticmethod
    def _through(held: _Held, commands: tuple[tuple[Any, ...] | PackedCommand, ...]) -> list[Any]:
        """The same through the connection's own methods (a connection without a real socket)."""
        connection = held.connection
        commands = tuple(c.args if type(c) is PackedCommand else c for c in commands)
        if len(commands) == 1:
            connection.send_command(*commands[0])
        else:
            connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies

    def _drop(self, held: _Held) -> None:
        """Close a connection that failed (or that a demoted master answered) and give it back
        to the pool, which connects afresh (Sentinel: to the new master)."""
        held.connection.disconnect()
        self.pool.release(held.connection)
