"""The request path's lean connection: replies in order, errors raised after every reply was
read, a failed connection replaced, a forked child never reusing its parent's socket, a demoted
master or a silent server left for a new connection, and no more connections than calls ran at
once, however many threads came and went."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import hiredis
import pytest
import redis

from flask_audit.queue.lean import LeadingArguments, LeanConnection, PackedCommand, _kernel_timeouts


def test_replies_come_back_in_order_on_one_kept_connection(any_redis):
    client, prefix = any_redis
    lean = LeanConnection(client)
    assert lean.execute(
        ("RPUSH", prefix + "l", b"a"), ("RPUSH", prefix + "l", b"b"), ("LLEN", prefix + "l")
    ) == [1, 2, 2]
    [first] = [held.connection for held in lean._idle]
    assert lean.execute(("LRANGE", prefix + "l", 0, -1)) == [[b"a", b"b"]]
    assert [held.connection for held in lean._idle] == [first]  # kept, not returned to the pool


@pytest.mark.parametrize(
    "tail", [[b"one"], [b"", b"two\r\nlines", "caf\u00e9".encode()], [], ["text", 7]], ids=str
)
def test_a_packed_command_is_what_hiredis_would_send(tail):
    lead = LeadingArguments("RPUSH", b"key", 3)
    command = PackedCommand(lead, tail)
    assert command.args == ("RPUSH", b"key", 3, *tail)
    assert command.packed == hiredis.pack_command(command.args)


def test_a_packed_command_runs_with_or_without_a_real_socket(any_redis):
    client, prefix = any_redis
    lean = LeanConnection(client)
    lead = LeadingArguments("RPUSH", prefix + "packed")
    assert lean.execute(PackedCommand(lead, [b"a", b"b"]), ("LLEN", prefix + "packed")) == [2, 2]
    assert client.lrange(prefix + "packed", 0, -1) == [b"a", b"b"]


def test_an_error_reply_is_raised_after_the_rest_were_read(any_redis):
    client, prefix = any_redis
    lean = LeanConnection(client)
    client.set(prefix + "s", "text")
    with pytest.raises(redis.ResponseError):
        lean.execute(("LPUSH", prefix + "s", b"x"), ("RPUSH", prefix + "l", b"after"))
    assert client.lrange(prefix + "l", 0, -1) == [b"after"]  # the second command ran
    assert lean.execute(("LLEN", prefix + "l")) == [1]  # and the connection is still in step


def test_a_connection_that_failed_is_closed_and_replaced(real_redis_client, key_prefix):
    lean = LeanConnection(real_redis_client)
    lean.execute(("PING",))
    old_socket = lean._idle[0].connection._sock
    old_socket.close()  # the server went away under it
    with pytest.raises(redis.ConnectionError):
        lean.execute(("PING",))
    assert lean._idle == []  # dropped, not given back
    assert lean.execute(("PING",)) == [b"PONG"]
    assert lean._idle[0].connection._sock is not old_socket  # a new connection


def test_a_forked_child_takes_a_connection_of_its_own(real_redis_client):
    lean = LeanConnection(real_redis_client)
    lean.execute(("PING",))
    [parent] = [held.connection for held in lean._idle]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it reused the parent's connection
        try:
            lean.execute(("PING",))
            mine = [held.connection for held in lean._idle]
            os.write(write, b"own" if len(mine) == 1 and mine[0] is not parent else b"same")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"own"


class _OneAnswerServer:
    """A socket server that answers every command with ``answer`` (None: never answers), but
    redis-py's CLIENT handshake, which it accepts."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            reader = hiredis.Reader()
            while chunk := conn.recv(65536):
                reader.feed(chunk)
                while (command := reader.gets()) is not False:
                    if command[0].upper() == b"CLIENT":
                        conn.sendall(b"+OK\r\n")
                    elif self.answer is not None:
                        conn.sendall(self.answer)


def test_a_demoted_master_is_left_so_that_the_next_call_asks_again():
    server = _OneAnswerServer(b"-READONLY You can't write against a read only replica.\r\n")
    lean = LeanConnection(redis.Redis(port=server.port, socket_timeout=2, protocol=2))
    with pytest.raises(redis.exceptions.ReadOnlyError):
        lean.execute(("LPUSH", "q", b"x"))
    assert lean._idle == []  # dropped: the pool connects afresh (Sentinel: to the new master)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        lean.execute(("LPUSH", "q", b"x"))
    assert server.accepted == 2


def test_a_server_that_does_not_answer_is_a_timeout_and_the_connection_is_dropped():
    server = _OneAnswerServer(None)
    lean = LeanConnection(
        redis.Redis(port=server.port, socket_timeout=0.2, socket_connect_timeout=1, protocol=2)
    )
    with pytest.raises(redis.TimeoutError):
        lean.execute(("PING",))
    assert lean._idle == []


#: a silent server met under gevent's patched sockets, in a process of its own (the patch is global)
UNDER_GEVENT = """
from gevent import monkey

monkey.patch_all()
import time

import redis

from flask_audit.queue.lean import LeanConnection
from tests.test_lean_connection import _OneAnswerServer

server = _OneAnswerServer(None)
lean = LeanConnection(redis.Redis(port=server.port, socket_timeout=0.2, socket_connect_timeout=1, protocol=2))
started = time.monotonic()
try:
    lean.execute(("PING",))
except redis.TimeoutError:
    print(f"timeout after {time.monotonic() - started:.2f} s")
"""


def test_under_gevent_a_server_that_does_not_answer_is_still_a_timeout():
    """gevent's patched socket waits in gevent's hub, where the kernel's timeout never fires: it
    keeps its own timeout, or a silent Redis would hold every audited request for good."""
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            [sys.executable, "-c", UNDER_GEVENT], cwd=root, capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.fail("under gevent, a push to a silent server was still waiting after 20 s")
    assert done.stdout.startswith("timeout after"), done.stdout + done.stderr
    assert float(done.stdout.split()[2]) < 5


def test_a_reply_split_across_reads_is_put_back_together(real_redis_client, key_prefix):
    lean = LeanConnection(real_redis_client)
    big = [os.urandom(300_000) for _ in range(3)]  # more than one read of the socket each
    lean.execute(*[("RPUSH", key_prefix + "big", value) for value in big])
    assert lean.execute(("LRANGE", key_prefix + "big", 0, -1)) == [big]


@pytest.mark.parametrize("timeout", [0.2, 2.5, 1e-9])
def test_the_kernel_keeps_the_sockets_timeout_and_never_reads_it_as_none(timeout):
    sock = socket.socket()
    sock.settimeout(timeout)
    try:
        _kernel_timeouts(sock)
        assert sock.gettimeout() is None  # blocking for Python: no poll before each call
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.calcsize("ll"))
        seconds, micros = struct.unpack("ll", raw)
        kept = seconds + micros / 1e6  # the kernel rounds up to its clock tick
        assert timeout <= kept < timeout + 0.011
        assert kept > 0  # 0 would mean no timeout at all
    finally:
        sock.close()


def test_threads_that_come_and_go_share_the_kept_connections(real_redis_client, key_prefix):
    """A server that runs each request on a new thread (Flask's development server) takes no
    new connection per request: the pool would run out and every push fall back."""
    lean = LeanConnection(real_redis_client)
    clients_before = len(real_redis_client.client_list())
    for _ in range(150):  # more than redis-py's pool allows (100), one thread after another
        thread = threading.Thread(target=lean.execute, args=(("RPUSH", key_prefix + "t", b"x"),))
        thread.start()
        thread.join()
    assert real_redis_client.llen(key_prefix + "t") == 150
    assert len(lean._idle) == 1
    assert len(real_redis_client.client_list()) - clients_before == 1  # what Redis sees

    barrier = threading.Barrier(8)

    def together() -> None:
        barrier.wait()
        for _ in range(50):
            lean.execute(("RPUSH", key_prefix + "t", b"y"))

    threads = [threading.Thread(target=together) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert real_redis_client.llen(key_prefix + "t") == 150 + 8 * 50
    assert 1 <= len(lean._idle) <= 8  # at most one a call in flight, all given back
    assert len(real_redis_client.client_list()) - clients_before == len(lean._idle)
    assert len({id(held.connection) for held in lean._idle}) == len(lean._idle)


def test_an_error_reply_gives_the_connection_back(real_redis_client, key_prefix):
    lean = LeanConnection(real_redis_client)
    real_redis_client.set(key_prefix + "s", "text")
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            lean.execute(("LPUSH", key_prefix + "s", b"x"))
    assert len(lean._idle) == 1
