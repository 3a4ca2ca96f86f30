"""Event ids: UUID version 7 (RFC 9562), monotonic within a process.

48 bits of Unix milliseconds lead, so ids made later sort later and the unique index on event_id
grows at its right edge. Within one millisecond the 74 random bits are drawn anew, and when a
draw would not sort after the previous id, the previous id plus one is used instead (RFC 9562,
section 6.2, method 3's monotonic random), so ids from one process are strictly increasing.

The random bits need to be unique, not secret, so they come from ``random`` (reseeded in every
forked process), not from the kernel: a system call per event was half the cost.
"""

from __future__ import annotations

import os
import threading
import time
from random import getrandbits

_lock = threading.Lock()
#: the previous id, as an integer
_last = 0


def _forget_after_fork() -> None:
    global _last, _lock
    _last = 0  # the child must not continue the parent's sequence, which the parent goes on with
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def new_event_id() -> str:
    """A new version 7 UUID, greater than every id this process made before."""
    global _last
    value = ((time.time_ns() // 1_000_000) << 80 | getrandbits(80)) & _VERSION_MASK | _VERSION_7
    with _lock:
        if value <= _last:  # same millisecond, and the draw sorts lower: the previous id plus one
            value = _last + 1 if _last & _LOW_62 != _LOW_62 else _successor(_last)
        _last = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _successor(value: int) -> int:
    """The next version 7 UUID after ``value``: its 74 random bits plus one, carrying into the
    timestamp when they overflow."""
    millis = value >> 80
    counter = ((value >> 64) & 0xFFF) << 62 | (value & _LOW_62)
    counter += 1
    if counter >> 74:
        millis, counter = millis + 1, 0
    return millis << 80 | _VERSION_7 | (counter >> 62) << 64 | (counter & _LOW_62)


#: clears the version nibble and the two variant bits; then version 7 and variant 0b10 are set
_VERSION_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_VERSION_7 = (0x7 << 76) | (0x2 << 62)
_LOW_62 = (1 << 62) - 1
