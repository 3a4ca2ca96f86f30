"""Escaping stored text for where it is read: a spreadsheet (CSV) or a terminal.

Rows may hold what a client sent, so a CSV cell must not run as a formula when opened in a
spreadsheet (OWASP's rule: a leading ``'`` before ``=``, ``+``, ``-``, ``@``, tab or CR), and
text written to a terminal must not carry escape sequences that move the cursor, rewrite the
screen or set the window title.
"""

from __future__ import annotations

import re
from typing import Any

#: first characters that make a spreadsheet read a cell as a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# C0 controls but tab and newline, DEL, and C1 controls (0x9b is a one-byte CSI on some terminals)
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell that a spreadsheet shows as text, never evaluates."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def for_terminal(text: str) -> str:
    """``text`` with every control character but tab and newline shown as ``\\xNN``."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
