"""The request path's lean connection: replies in order, errors raised after every reply was
read, a failed connection replaced, a forked child never reusing its parent's socket."""

from __future__ import annotations

import os

import pytest
import redis

from flask_audit.queue.lean import LeanConnection


def test_replies_come_back_in_order_on_one_kept_connection(any_redis):
    client, prefix = any_redis
    lean = LeanConnection(client)
    assert lean.execute(
        ("RPUSH", prefix + "l", b"a"), ("RPUSH", prefix + "l", b"b"), ("LLEN", prefix + "l")
    ) == [1, 2, 2]
    first = lean._local.held[1]
    assert lean.execute(("LRANGE", prefix + "l", 0, -1)) == [[b"a", b"b"]]
    assert lean._local.held[1] is first  # kept, not returned to the pool


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
    old_socket = lean._local.held[1]._sock
    old_socket.close()  # the server went away under it
    with pytest.raises(redis.ConnectionError):
        lean.execute(("PING",))
    assert lean._local.held is None
    assert lean.execute(("PING",)) == [b"PONG"]
    assert lean._local.held[1]._sock is not old_socket  # a new connection


def test_a_forked_child_takes_a_connection_of_its_own(real_redis_client):
    lean = LeanConnection(real_redis_client)
    lean.execute(("PING",))
    parent = lean._local.held[1]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it reused the parent's connection
        try:
            lean.execute(("PING",))
            os.write(write, b"same" if lean._local.held[1] is parent else b"own")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 10) == b"own"
