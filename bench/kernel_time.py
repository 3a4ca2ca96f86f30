"""Where a process's CPU went between its own code and the kernel, from ``perf`` samples.

The load bench's per-process CPU says that a direct event costs the web process more than a
buffered one; whether that is Python running or the kernel sending, waking and switching
decides which change could help. ``perf record -a -g`` samples every CPU, kernel stacks
included, while wrk runs; each sample is then charged to its process's part of the stack and,
inside the kernel, to the system call it was made under (or to "interrupts", "kernel, other").
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: samples a second on each CPU
FREQUENCY = 997
#: user-space addresses lie below this (x86-64's canonical split)
KERNEL_START = 0xFFFF800000000000
#: the kernel's way in and out of every system call, below the call's own entry point
SYSCALL_PATH = ("do_syscall_64", "entry_SYSCALL", "syscall_exit")
#: where a kernel stack says the CPU was serving an interrupt rather than a call
INTERRUPT_MARKS = ("irq", "sysvec", "softirq", "apic_timer")


@contextmanager
def recording(path: Path, seconds: int) -> Iterator[None]:
    """``perf record`` of every CPU, with call stacks, for ``seconds`` from entering the block."""
    perf = subprocess.Popen(
        [
            "perf",
            "record",
            "-q",
            "-a",
            "-g",
            "-F",
            str(FREQUENCY),
            "-o",
            str(path),
            "--",
            "sleep",
            str(seconds),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        perf.wait(timeout=seconds + 60)


def where(stack: list[tuple[int, str]]) -> str:
    """What one sample was doing: "user", the system call it ran under ("sendto", "futex"...),
    "system call entry, exit" (a call's way in or out, before its name is on the stack),
    "interrupts" or "kernel, other". ``stack`` is (address, symbol), leaf first."""
    if not stack or stack[0][0] < KERNEL_START:
        return "user"
    kernel = [sym for address, sym in stack if address >= KERNEL_START]
    for sym in reversed(kernel):  # the outermost system call's entry names the call
        for prefix in ("__x64_sys_", "__do_sys_", "__se_sys_"):
            if sym.startswith(prefix):
                return sym[len(prefix) :]
    if any(sym.startswith(SYSCALL_PATH) for sym in kernel):  # entering or leaving, call unnamed
        return "system call entry, exit"
    if any(mark in sym for sym in kernel for mark in INTERRUPT_MARKS):
        return "interrupts"
    return "kernel, other"


def samples(path: Path) -> Iterator[tuple[int, str]]:
    """(pid, ``where``) of every sample in a ``perf record`` file."""
    out = subprocess.run(
        ["perf", "script", "-i", str(path), "-F", "pid,ip,sym"],
        capture_output=True,
        text=True,
        errors="replace",
        check=True,
        timeout=600,
    ).stdout
    for block in out.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines or not lines[0].strip().split("/", 1)[0].isdigit():
            continue
        stack = []
        for line in lines[1:]:
            address, _, sym = line.strip().partition(" ")
            try:
                stack.append((int(address, 16), sym))
            except ValueError:
                continue
        yield int(lines[0].strip().split("/", 1)[0]), where(stack)


def breakdown(path: Path, part_of_pid: Callable[[int], str | None]) -> dict[str, dict[str, float]]:
    """CPU seconds sampled in each part of the stack, by ``where``: {part: {where: seconds}}."""
    found: dict[str, dict[str, float]] = {}
    for pid, what in samples(path):
        part = part_of_pid(pid)
        if part is None:
            continue
        spent = found.setdefault(part, {})
        spent[what] = spent.get(what, 0.0) + 1.0 / FREQUENCY
    return found
