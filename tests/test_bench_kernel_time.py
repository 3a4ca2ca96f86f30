"""The load bench's ``--perf`` split: a sample is charged to the system call it ran under, and
``perf script``'s text is read into (pid, where) pairs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from bench import kernel_time
from bench.kernel_time import where

USER = 0x55D0C0DE1000
KERNEL = 0xFFFFFFFF81000000


def test_a_sample_in_the_process_own_code_is_user():
    assert where([(USER, "_PyEval_EvalFrameDefault"), (USER + 8, "main")]) == "user"


def test_a_kernel_sample_is_charged_to_the_outermost_system_call():
    stack = [
        (KERNEL + 1, "__schedule"),
        (KERNEL + 2, "futex_wait"),
        (KERNEL + 3, "__x64_sys_futex"),
        (KERNEL + 4, "do_syscall_64"),
        (USER, "pthread_cond_timedwait"),
    ]
    assert where(stack) == "futex"


def test_a_sample_on_the_way_into_or_out_of_a_call_is_charged_to_system_calls():
    stack = [(KERNEL + 1, "syscall_exit_to_user_mode"), (KERNEL + 2, "do_syscall_64"), (USER, "getppid")]
    assert where(stack) == "system call entry, exit"


def test_a_kernel_sample_outside_any_call_is_an_interrupt_or_other():
    assert where([(KERNEL + 1, "net_rx_action"), (KERNEL + 2, "handle_softirqs")]) == "interrupts"
    assert where([(KERNEL + 1, "finish_task_switch"), (KERNEL + 2, "schedule")]) == "kernel, other"
    assert where([]) == "user"


def test_perf_script_text_is_read_sample_by_sample(monkeypatch, tmp_path):
    text = (
        " 4242 \n"
        "\t ffffffff81234567 tcp_sendmsg\n"
        "\t ffffffff81234999 __x64_sys_sendto\n"
        "\t     7f0000001000 send\n"
        "\n"
        " 77 \n"
        "\t     55d0c0de1000 _PyEval_EvalFrameDefault\n"
        "\t                0 [unknown]\n"
        "\n"
    )

    def fake_run(command, **_):
        assert command[:2] == ["perf", "script"]
        return subprocess.CompletedProcess(command, 0, stdout=text)

    monkeypatch.setattr(kernel_time.subprocess, "run", fake_run)
    assert list(kernel_time.samples(tmp_path / "x.perf")) == [(4242, "sendto"), (77, "user")]
    parts = {4242: "gunicorn", 77: "redis"}
    spent = kernel_time.breakdown(tmp_path / "x.perf", parts.get)
    assert spent == {
        "gunicorn": {"sendto": pytest.approx(1 / kernel_time.FREQUENCY)},
        "redis": {"user": pytest.approx(1 / kernel_time.FREQUENCY)},
    }


@pytest.mark.skipif(shutil.which("perf") is None, reason="needs perf (Debian's linux-perf)")
def test_real_perf_samples_tell_own_code_from_a_system_call(tmp_path):
    """Two real processes under ``perf record -a``: one spinning in Python, one calling the
    kernel in a loop; the first is charged to "user", the second mostly to its call."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    calls = subprocess.Popen([sys.executable, "-c", "import os\nwhile True: os.getppid()"])
    try:
        time.sleep(0.3)  # both past interpreter start-up
        with kernel_time.recording(tmp_path / "x.perf", 1):
            pass
    finally:
        for proc in (spin, calls):
            proc.kill()
            proc.wait()
    parts = {spin.pid: "spin", calls.pid: "calls"}
    spent = kernel_time.breakdown(tmp_path / "x.perf", parts.get)
    assert spent["spin"].get("user", 0.0) > 0.8 * sum(spent["spin"].values())
    in_the_call = spent["calls"].get("getppid", 0.0) + spent["calls"].get("system call entry, exit", 0.0)
    assert in_the_call > 0.2 * sum(spent["calls"].values())
    assert spent["calls"].get("getppid", 0.0) > 0
