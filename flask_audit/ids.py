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
#: the previous id's 48-bit time and 74 random bits, as one integer
_last = 0


def _forget_after_fork() -> None:
    global _last, _lock
    _last = 0  # the child must not continue the parent's sequence, which the parent goes on with
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def new_event_id() -> str:
    """A new version 7 UUID, greater than every id this process made before."""
    global _last
    candidate = (time.time_ns() // 1_000_000) << 74 | getrandbits(74)
    with _lock:
        if candidate <= _last:
            candidate = _last + 1
        _last = candidate
    # spread 48 + 74 bits around the version nibble (7) and the variant bits (0b10)
    value = (candidate >> 74) << 80 | 0x7 << 76 | (candidate >> 62 & 0xFFF) << 64 | 0x2 << 62
    value |= candidate & 0x3FFF_FFFF_FFFF_FFFF
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
