"""The whole stack under load, as a user sees it: gunicorn (2 sync workers), a Dramatiq worker
(1 process, 2 threads), the clock, PostgreSQL and Redis on this machine, and `wrk -t2 -c8` for
DURATION seconds against a route that answers "ok" and the same route with one `audit.log`,
direct (over TCP and over a Unix socket) and buffered (and with gthread workers; with gevent
workers under ``--workers gevent`` or ``all``), in the same run, and beside them the floor: the
route waiting for a bare Redis PING instead of an event, what any event confirmed before the
call returns must pay at least (``bench.targets.floor_rows``), and the floor with an event: a
buffered event and then that PING in one request, a direct event's two parts without its push.
Reports requests/s, latency, the machine's busy CPU per request (from /proc/stat) and where it
went (per process, from /proc/<pid>/stat), and audit's cost per event: the CPU per request of an
audited mode minus that of the plain route. Every mode runs ``--rounds`` times, interleaved,
and the table gives medians: the same mode measured minutes apart on this machine differs by a
fifth.

    make bench-load   # or: python bench/load.py [--duration 10] [--rounds 3] [--workers sync]
    python bench/load.py --against c0c6849   # another revision's package, round by round beside

``--against REV`` runs every mode on revision REV's package too (``git archive``; each process
starts in its directory), the two trees taking turns within every round, so that a change is
measured against the code before it under the same drift.

Needs wrk (apt-get install wrk). ``--profile`` also samples the web, worker and clock with
py-spy (pip install py-spy) and lists each one's hot spots; sampling costs CPU, so that run's
table is not the one to compare; ``--perf`` samples every CPU with perf and splits the web's and
Redis's CPU between their own code and the kernel's calls (``bench.kernel_time``), at a cost of
its own. Every event of an audited mode is checked into PostgreSQL
before the next mode starts (the ledger). Stops every process it started, by PID.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from statistics import median

import psycopg2
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kernel_time import breakdown, recording
from bench.revisions import package_of
from bench.targets import (
    BUFFERED,
    BUFFERED_THREADS,
    DIRECT,
    FLOOR,
    FLOOR_EVENT,
    FLOOR_EVENT_THREADS,
    FLOOR_THREADS,
    GROUPED,
    PINNED,
    PLAIN,
    PLAIN_THREADS,
    floor_rows,
    target_rows,
)
from tests.processes import ROOT, Process, gunicorn, listening_socket, python, wait_for

REDIS_URL = os.environ.get("AUDIT_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN = os.environ.get("AUDIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")
#: the parts of the stack whose processes are measured, as ``part_of`` names them
PARTS = ("gunicorn", "dramatiq worker", "clock", "redis", "postgresql")
SYNC = ("--workers", "2")
#: gunicorn's threaded workers (4 threads each): two servers of one worker (see ``web_servers``)
GTHREAD = ("--workers", "2", "--worker-class", "gthread", "--threads", "4")
#: gunicorn's gevent workers (each greenlet a request, group commit sharing their round trips),
#: split into two servers of one worker as gthread's are
GEVENT = ("--workers", "2", "--worker-class", "gevent", "--worker-connections", "100")
#: the worker kinds that serve one process's requests concurrently
CONCURRENT = (GTHREAD, GEVENT)
#: not a gunicorn option: a mode's workers each held to a core of their own (``--pin``), by
#: gunicorn's settings in examples/gunicorn_pinned.py
PIN = "--pin-to-core"
PINNED_CONFIG = "python:examples.gunicorn_pinned"
#: a mode's AUDIT_REDIS_URL asking for a Redis of its own on a Unix socket, started by the bench
#: with the shared server's settings (no snapshots, no append-only file)
UNIX_SOCKET = "unix-socket"
#: the routes that log one event a request, each of which the ledger checks into PostgreSQL
LOGGING_ROUTES = ("/audited", "/audited-round-trip")
#: (label, route, extra environment, gunicorn's worker options)
Mode = tuple[str, str, dict[str, str], tuple[str, ...]]
MODES: tuple[Mode, ...] = (
    (PLAIN, "/plain", {}, SYNC),
    (DIRECT, "/audited", {}, SYNC),
    ("audit.log, direct push, Unix socket", "/audited", {"AUDIT_REDIS_URL": UNIX_SOCKET}, SYNC),
    (BUFFERED, "/audited", {"AUDIT_BUFFERED": "true"}, SYNC),
    (FLOOR, "/round-trip", {}, SYNC),
    (FLOOR_EVENT, "/audited-round-trip", {"AUDIT_BUFFERED": "true"}, SYNC),
    (PLAIN_THREADS, "/plain", {}, GTHREAD),
    (
        "audit.log, direct push, gthread, no group commit",
        "/audited",
        {"AUDIT_GROUP_COMMIT": "false"},
        GTHREAD,
    ),
    (GROUPED, "/audited", {}, GTHREAD),
    (BUFFERED_THREADS, "/audited", {"AUDIT_BUFFERED": "true"}, GTHREAD),
    (FLOOR_THREADS, "/round-trip", {}, GTHREAD),
    (FLOOR_EVENT_THREADS, "/audited-round-trip", {"AUDIT_BUFFERED": "true"}, GTHREAD),
    ("plain route, gevent", "/plain", {}, GEVENT),
    ("audit.log, direct push, gevent", "/audited", {}, GEVENT),
    ("audit.log, AUDIT_BUFFERED, gevent", "/audited", {"AUDIT_BUFFERED": "true"}, GEVENT),
)


def create_database(kind: str) -> tuple[str, str]:
    """A new, empty PostgreSQL database for one run: its name and URL (``drop_database`` after)."""
    db = f"{kind}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{db}"')
    finally:
        admin.close()
    return db, PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def drop_database(db: str) -> None:
    """Drop a run's database, closing whatever connections it still has."""
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        admin.cursor().execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db,)
        )
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}"')
    finally:
        admin.close()


def push_calls(url: str) -> int:
    """Pushes the Redis at ``url`` has run so far: LPUSH calls, one per push whether the push is
    the plain command or, before the Lua-free push, a script's (Redis counts commands scripts
    run), so two revisions compare alike; a critical event's fallback adds one."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


def busy_seconds() -> float:
    """The machine's busy CPU time so far: every state of /proc/stat's cpu line but idle and iowait."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every process's command line and CPU seconds used so far (utime + stime), by pid."""
    found: dict[int, tuple[str, float]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(proc.name)] = (cmd, (int(stat[11]) + int(stat[12])) / TICKS)
    return found


def switches_by_group() -> dict[str, int]:
    """Context switches so far (voluntary and not) of every thread of each part's processes:
    what a wait for Redis or a lock costs shows here as a count, where CPU time moves with the
    machine's hour."""
    groups = dict.fromkeys(PARTS, 0)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = part_of((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            if name is None:
                continue
            for task in (proc / "task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches:" in line:
                        groups[name] += int(line.rsplit(None, 1)[1])
        except (OSError, ValueError):
            continue
    return groups


def web_cpu_by_pid(processes: dict[int, tuple[str, float]]) -> dict[int, float]:
    """CPU seconds used so far by each gunicorn process."""
    return {pid: used for pid, (cmd, used) in processes.items() if "gunicorn" in cmd}


def part_of(cmd: str) -> str | None:
    """Which part of the stack a command line belongs to, if any."""
    if "gunicorn" in cmd:
        return "gunicorn"
    if "dramatiq" in cmd:
        return "dramatiq worker"
    if "audit scheduler" in cmd:
        return "clock"
    if cmd.startswith("redis-server"):
        return "redis"
    if cmd.startswith("postgres"):
        return "postgresql"
    return None


def cpu_by_group(processes: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds used so far by the processes of each part, by command line."""
    groups = dict.fromkeys(PARTS, 0.0)
    for cmd, used in processes.values():
        name = part_of(cmd)
        if name:
            groups[name] += used
    return groups


def think_script(think_ms: int, logs: Path) -> list[str]:
    """wrk's options for a pause of ``think_ms`` between a response and the connection's next
    request (a Lua ``delay``), so that the load stays below what the machine can serve; none for 0."""
    if think_ms <= 0:
        return []
    script = logs / f"think-{think_ms}ms.lua"
    script.write_text(f"function delay()\n  return {think_ms}\nend\n")
    return ["-s", str(script)]


def refuse_errors(url: str, out: str) -> None:
    """Raise when wrk's report counts answers that were not 2xx or 3xx: an error answered fast
    would pass for a cheap request (wrk counts it as served)."""
    failed = re.search(r"Non-2xx or 3xx responses: \d+", out)
    if failed:
        raise RuntimeError(f"wrk against {url}: {failed.group(0)}")


def wrk(url: str, duration: int, options: Sequence[str] = ()) -> tuple[int, float, float, float, float]:
    """(requests, requests/s, p50 ms, p99 ms, wrk's own CPU seconds) of one wrk run; ``options``
    are wrk's further options (``think_script``'s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{duration}s", "--latency", *options, url],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    refuse_errors(url, out)
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return requests, rate, percentile("50"), percentile("99"), used


def hot_spots(collapsed: Path, top: int = 12) -> list[tuple[str, float]]:
    """The functions that were on CPU themselves most often (the leaf of each sampled stack), as
    shares of all samples, from py-spy's collapsed ("raw") output."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():  # a stack py-spy cut short
            continue
        leaf = stack.rsplit(";", 1)[-1]
        counts[leaf] = counts.get(leaf, 0) + int(n)
        total += int(n)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return [(name, 100.0 * n / total) for name, n in ranked] if total else []


@contextmanager
def unix_redis(logs: Path) -> Iterator[str]:
    """A Redis of its own, listening on a Unix socket only, for the time of a mode; its URL."""
    path = logs / f"redis-{uuid.uuid4().hex[:8]}.sock"
    command = ["redis-server", "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"]
    server = Process("redis", [*command, "--save", "", "--appendonly", "no"], dict(os.environ), logs)
    try:
        wait_for(lambda: path.exists() and redis.Redis(unix_socket_path=str(path)).ping(), 30, "redis")
        yield f"unix://{path}?db=0"
    finally:
        server.stop()


def on_tree(env: dict[str, str], package: Path | None) -> Path:
    """Where to start a process so that ``package`` (another revision's ``flask_audit``) comes
    first on its path, this tree's root on PYTHONPATH giving the app; this tree's root for None."""
    if package is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return package or ROOT


def init_db(env: dict[str, str], cwd: Path) -> None:
    """``flask audit init-db`` of the tree in ``cwd``, on the database ``env`` names."""
    init = python("-m", "flask", "audit", "init-db")
    subprocess.run(init, env=env, cwd=cwd, check=True, capture_output=True, timeout=120)


def drain_processes(env: dict[str, str], logs: Path, cwd: Path) -> list[Process]:
    """The real worker (1 process x 2 threads) and clock of the tree in ``cwd``, started."""
    worker = python("-m", "dramatiq", "flask_audit.worker", "--processes", "1", "--threads", "2")
    return [
        Process("worker", worker, env, logs, cwd=cwd),
        Process("clock", python("-m", "flask", "audit", "scheduler"), env, logs, cwd=cwd),
    ]


def reuse_port_sockets(count: int) -> list[socket.socket]:
    """``count`` listening sockets on one free loopback port, with SO_REUSEPORT: the kernel
    spreads new connections over them by their addresses, whatever the servers' timing."""
    socks: list[socket.socket] = []
    port = 0
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        sock.listen(128)
        sock.set_inheritable(True)
        socks.append(sock)
    return socks


def unpinned(web: tuple[str, ...]) -> tuple[str, ...]:
    """A mode's gunicorn options without the bench's own ``PIN``."""
    return tuple(option for option in web if option != PIN)


def pinned(mode: Mode) -> Mode:
    """The same mode with its web workers each held to a core (``--pin``)."""
    label, route, extra, web = mode
    return (label + PINNED, route, extra, (*web, PIN))


def mine(modes: list[Mode], web: tuple[str, ...]) -> list[Mode]:
    """The modes served by ``web``'s kind of worker."""
    return [mode for mode in modes if mode[3] == web]


def web_commands(web: tuple[str, ...], socks: list[socket.socket]) -> list[list[str]]:
    """The command of each gunicorn serving a mode, one per listening socket: two sync workers
    under one gunicorn, or one worker per gunicorn for the concurrent kinds. A pinned mode adds
    examples/gunicorn_pinned.py's settings; with two gunicorns, each starts under ``taskset`` on
    a core of its own, which the settings then hold its worker to."""
    app = "bench.load_app:create_app()"
    options = unpinned(web)
    if len(socks) > 1:
        options = ("--workers", "1", *options[2:])
    if PIN in web:
        options = (*options, "--config", PINNED_CONFIG)
    commands = [gunicorn(sock, app, *options) for sock in socks]
    if PIN in web and len(socks) > 1:
        commands = [["taskset", "-c", str(core), *command] for core, command in enumerate(commands)]
    return commands


def web_servers(
    web: tuple[str, ...], env: dict[str, str], logs: Path, cwd: Path
) -> tuple[int, list[Process]]:
    """The web tier: one gunicorn with two sync workers, or, for gthread and gevent, two gunicorns
    of one worker each, on sockets sharing a port (``reuse_port_sockets``). Two gthread workers
    under one gunicorn share one socket, and the one that wakes first accepts every connection
    wrk opens at once; keep-alive then keeps them there for the whole run (seen here on
    2026-11-28: one process did all the work in most gthread runs, even after two retries).
    Returns the port and the processes."""
    socks = reuse_port_sockets(2) if unpinned(web) in CONCURRENT else [listening_socket()]
    commands = web_commands(web, socks)
    procs = [
        Process(f"web{i or ''}", command, env, logs, pass_fds=(sock.fileno(),), cwd=cwd)
        for i, (sock, command) in enumerate(zip(socks, commands, strict=True))
    ]
    port = socks[0].getsockname()[1]
    for sock in socks:
        sock.close()
    return port, procs


def run_mode(
    label: str,
    route: str,
    extra: dict[str, str],
    web: tuple[str, ...],
    duration: int,
    logs: Path,
    profile: bool = False,
    package: Path | None = None,
    think_ms: int = 0,
    perf: bool = False,
) -> dict:
    """One run of one mode: the stack started, wrk, the ledger checked, everything stopped.
    With ``package`` (another revision's ``flask_audit``), every process runs from its directory,
    so that its package comes first on the path; this tree's root, on PYTHONPATH, gives the app.
    With ``think_ms``, every connection pauses that long between requests. With ``perf``, every
    CPU is sampled while wrk runs (``bench.kernel_time``)."""
    db, url_db = create_database("audit_load")
    prefix = f"load-{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "FLASK_APP": "bench.load_app:create_app()",
        "AUDIT_REDIS_URL": REDIS_URL,
        "AUDIT_KEY_PREFIX": prefix,
        "AUDIT_DATABASE_URL": url_db,
        "AUDIT_SPOOL_PATH": str(logs / f"{db}.spool"),
        **extra,
    }
    cwd = on_tree(env, package)
    redis_url = env["AUDIT_REDIS_URL"]
    init_db(env, cwd)
    port, procs = web_servers(web, env, logs, cwd)
    procs += drain_processes(env, logs, cwd)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: (
                subprocess.run(["curl", "-sf", base + "/plain"], capture_output=True, timeout=5).returncode
                == 0
            ),
            60,
            "gunicorn",
        )
        wrk(base + route, 2)  # warm up
        time.sleep(2)
        spies = []
        if profile:  # each part's hot spots while wrk runs (py-spy samples from outside)
            spies = [
                subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(proc.pid),
                        "--subprocesses",
                        "--format",
                        "raw",
                        "--duration",
                        str(duration),
                        "--rate",
                        "200",
                        "--nonblocking",
                        "-o",
                        str(logs / f"{db}-{proc.name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for proc in procs
            ]
        cpu_before, processes_before, pushes_before = busy_seconds(), process_cpu(), push_calls(redis_url)
        switches_before = switches_by_group()
        sampled = logs / f"{db}.perf"
        with recording(sampled, duration) if perf else nullcontext():
            requests, rate, p50, p99, wrk_cpu = wrk(base + route, duration, think_script(think_ms, logs))
        processes_after = process_cpu()  # one reading of /proc: the web's CPU and --perf's pids
        parts_by_pid = {pid: part_of(cmd) for pid, (cmd, _) in processes_after.items()}
        pushes = push_calls(redis_url) - pushes_before
        switches = {k: v - switches_before[k] for k, v in switches_by_group().items()}
        web_before = web_cpu_by_pid(processes_before)
        web_used = [v - web_before.get(pid, 0.0) for pid, v in web_cpu_by_pid(processes_after).items()]
        # with keep-alive (gthread), wrk's 8 connections stay with the worker that accepted them
        busiest = max(web_used) / sum(web_used) if sum(web_used) else 0.0
        for spy in spies:
            spy.wait(timeout=60)
        conn = psycopg2.connect(url_db)
        conn.autocommit = True

        def stored() -> int:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM audit_logs")
                return cur.fetchone()[0]

        expected_at_least = requests if route in LOGGING_ROUTES else 0
        if route in LOGGING_ROUTES:  # the ledger: every request's event lands (warm-up ones too)
            wait_for(lambda: stored() >= expected_at_least, 120, "every event stored", interval=0.5)
        cpu = busy_seconds() - cpu_before  # includes draining what the load left behind
        groups_before = cpu_by_group(processes_before)
        groups = {k: v - groups_before[k] for k, v in cpu_by_group(process_cpu()).items()}
        groups["wrk"] = wrk_cpu  # gone before cpu_by_group could see it: its rusage instead
        # the kernel's own work (softirqs of loopback traffic), and processes that came and went
        groups["the rest"] = cpu - sum(groups.values())
        rows = stored()
        conn.close()
        batches = int(redis.Redis.from_url(redis_url).hget(f"{prefix}metrics", "batches") or 0)
    finally:
        for proc in procs:
            proc.stop()
        drop_database(db)
    profiles = {proc.name: logs / f"{db}-{proc.name}.txt" for proc in procs}
    kernel = breakdown(sampled, parts_by_pid.get) if perf else {}
    sampled.unlink(missing_ok=True)  # a few MB a run
    return {
        "kernel": {part: {k: v / requests * 1e6 for k, v in spent.items()} for part, spent in kernel.items()},
        "spots": {name: hot_spots(path) for name, path in profiles.items() if path.exists()},
        "label": label,
        "route": route,
        "web": web,
        "requests": requests,
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "cpu_us": cpu / requests * 1e6,
        "groups": {k: v / requests * 1e6 for k, v in groups.items()},
        "switches": {k: v / requests for k, v in switches.items()},
        "rows": rows,
        "pushes": pushes,
        "batches": batches,
        "busiest": busiest,
    }


#: a gthread run in which one web process did more than this share of gunicorn's work is run again
SKEWED = 0.75


def measured(
    mode: tuple[str, str, dict[str, str], tuple[str, ...]],
    duration: int,
    logs: Path,
    profile: bool,
    package: Path | None = None,
    think_ms: int = 0,
    perf: bool = False,
) -> dict:
    """One mode's figures. gthread workers keep a keep-alive connection for good, so when one
    process happens to accept most of wrk's 8 connections, the other sits idle and the run
    measures one process (seen here: the plain route at 1,050 requests/s instead of 2,600-3,000,
    its busiest process doing all the work). Such a run is repeated, up to twice, and noted."""
    label, route, extra, web = mode
    if extra.get("AUDIT_REDIS_URL") == UNIX_SOCKET:
        with unix_redis(logs) as url:
            mode = (label, route, {**extra, "AUDIT_REDIS_URL": url}, web)
            return measured(mode, duration, logs, profile, package, think_ms, perf)
    result = run_mode(*mode, duration, logs, profile, package, think_ms, perf)
    for _ in range(2):
        if unpinned(web) not in CONCURRENT or result["busiest"] <= SKEWED:
            break
        print(
            f"{label}: one web process did {100 * result['busiest']:.0f}% of the work; run again",
            file=sys.stderr,
        )
        result = run_mode(*mode, duration, logs, profile, package, think_ms, perf)
    return result


def median_kernel_time(runs: list[dict]) -> dict[str, dict[str, float]]:
    """``--perf``'s split of each part's CPU, the median of the rounds for every call (a round
    in which a call was never sampled counts it as 0)."""
    medians: dict[str, dict[str, float]] = {}
    for part in {part for r in runs for part in r["kernel"]}:
        calls = {call for r in runs for call in r["kernel"].get(part, {})}
        medians[part] = {
            call: median([r["kernel"].get(part, {}).get(call, 0.0) for r in runs]) for call in calls
        }
    return medians


def summarise(runs: list[dict], plains: list[dict]) -> dict:
    """One mode's figures over its rounds: the median of each, and the audit's cost and the
    throughput against plain taken round by round (each against the plain run of its round)."""
    first = runs[0]
    audited = first["route"] != "/plain"
    costs = [r["cpu_us"] - p["cpu_us"] for r, p in zip(runs, plains, strict=True)]
    return {
        "label": first["label"],
        "audited": audited,
        "stores": first["route"] in LOGGING_ROUTES,
        "rate": median([r["rate"] for r in runs]),
        "ratio": median([r["rate"] / p["rate"] for r, p in zip(runs, plains, strict=True)]),
        "p50": median([r["p50"] for r in runs]),
        "p99": median([r["p99"] for r in runs]),
        "cpu_us": median([r["cpu_us"] for r in runs]),
        "cost": median(costs),
        "cost_range": (min(costs), max(costs)),
        # the same cost in plain requests: the machine's speed drifts by hour, and this does less
        "in_plains": median([c / p["cpu_us"] for c, p in zip(costs, plains, strict=True)]),
        "calls": median([r["pushes"] / r["requests"] for r in runs]),
        "per_batch": median([r["rows"] / r["batches"] for r in runs]) if first["batches"] else 0.0,
        "rows": sum(r["rows"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
        "groups": {k: median([r["groups"][k] for r in runs]) for k in first["groups"]},
        "switches": {k: median([r["switches"][k] for r in runs]) for k in first["switches"]},
        "busiest": max(r["busiest"] for r in runs),
        "spots": first["spots"],
        "kernel": median_kernel_time(runs),
    }


def print_table(header: list[str], rows: list[list[str]], align: str | None = None) -> None:
    """Print a Markdown table; ``align`` gives each column's side, ``l`` or ``r`` (by default the
    first column left, the figures right)."""
    align = align or "l" + "r" * (len(header) - 1)
    print("| " + " | ".join(header) + " |")
    print("|" + "".join("---|" if side == "l" else "---:|" for side in align))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def print_kernel_time(results: list[dict], parts: Sequence[str] = ("gunicorn", "redis")) -> None:
    """With ``--perf``: each part's CPU a request split between its own code ("user") and the
    kernel, by system call, the largest first; a mode's rounds' medians."""
    for part in parts:
        spent = [r["kernel"].get(part, {}) for r in results]
        if not any(spent):
            continue
        totals: dict[str, float] = {}
        for one in spent:
            for k, v in one.items():
                totals[k] = totals.get(k, 0.0) + v
        shown = sorted(totals, key=lambda k: -totals[k])[:8]
        print(
            f"\n{part}: µs of CPU a request, in its own code (user) or in the kernel, by call (perf samples):\n"
        )
        rows = []
        for r, one in zip(results, spent, strict=True):
            rest = sum(v for k, v in one.items() if k not in shown)
            rows.append([r["label"], *(f"{one.get(k, 0.0):.0f}" for k in shown), f"{rest:.0f}"])
        print_table(["mode", *shown, "the rest"], rows)


def print_targets(trees: dict[str, Path | None], results: list[dict]) -> None:
    """Each tree's targets, met or not by this run's medians."""
    for tree in trees:
        verdicts = target_rows({r["label"][len(tree) :]: r for r in results if r["label"].startswith(tree)})
        if verdicts:
            print(
                f"\n{tree}targets, from this run's medians (each round's figures are in the first table):\n"
            )
            print_table(["target", "this run", ""], [list(row) for row in verdicts], align="lrl")


def print_floors(trees: dict[str, Path | None], results: list[dict]) -> None:
    """Each tree's floor: what waiting for a bare round trip to Redis costs by itself, and the
    least a direct event can cost against a buffered one because of it (``bench.targets.floor_rows``)."""
    for tree in trees:
        rows = floor_rows({r["label"][len(tree) :]: r for r in results if r["label"].startswith(tree)})
        if rows:
            print(
                f"\n{tree}the floor: a bare Redis round trip a request (PING), no event, against the plain route:\n"
            )
            header = ["workers", "its cost", "of it, in the web processes", "a buffered event"]
            header += ["least a direct event can cost", "a buffered event and a PING cost"]
            header += ["a direct event cost"]
            print_table([*header, "web switches over plain: floor/direct/buffered"], [list(r) for r in rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="runs of every mode, interleaved; the table gives medians (this machine's CPU per"
        " request drifts by a fifth between runs minutes apart)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the web, worker and clock of each mode (needs py-spy)"
    )
    parser.add_argument(
        "--perf",
        action="store_true",
        help="sample every CPU with perf while wrk runs and split each part's CPU between its own"
        " code and the kernel's system calls (needs perf; sampling costs CPU)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run every mode twice, the second time with each web worker held to a core of its own"
        " (examples/gunicorn_pinned.py), labelled 'pinned'",
    )
    parser.add_argument(
        "--workers",
        choices=("sync", "gthread", "gevent", "both", "all"),
        default="both",
        help="which kind of gunicorn worker: both is sync and gthread, all adds gevent",
    )
    parser.add_argument("--only", default="", help="run only the modes whose label contains this (and plain)")
    parser.add_argument(
        "--against",
        help="a git revision whose package runs every mode too, round by round beside this tree's",
    )
    parser.add_argument(
        "--think-ms",
        type=int,
        default=0,
        help="every connection pauses this many ms between a response and its next request, so that"
        " latency is measured below saturation (default 0: as fast as the server answers)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk: apt-get install wrk", file=sys.stderr)
        return 2
    logs = Path(tempfile.mkdtemp(prefix="audit-load-"))
    profile = args.profile and shutil.which("py-spy") is not None
    if args.perf and shutil.which("perf") is None:
        print("--perf needs perf: apt-get install linux-perf", file=sys.stderr)
        return 2
    kinds = {
        "sync": (SYNC,),
        "gthread": (GTHREAD,),
        "gevent": (GEVENT,),
        "both": (SYNC, GTHREAD),
        "all": (SYNC, GTHREAD, GEVENT),
    }[args.workers]
    modes = [m for m in MODES if m[3] in kinds and (m[1] == "/plain" or args.only in m[0])]
    if args.pin:  # each kind's modes, then the same pinned, so that plain_of finds each one's plain
        modes = [m for kind in kinds for m in (*mine(modes, kind), *map(pinned, mine(modes, kind)))]
    # label prefix -> the package to run (None: this tree's); with --against, the two take turns
    # every round, so that the machine's drift falls on both alike
    trees: dict[str, Path | None] = {"": None}
    if args.against:
        trees = {f"{args.against}: ": package_of(args.against), "this tree: ": None}
    runs: dict[tuple[str, str], list[dict]] = {(tree, m[0]): [] for tree in trees for m in modes}
    for _ in range(args.rounds):
        for tree, package in trees.items():
            for mode in modes:
                result = measured(mode, args.duration, logs, profile, package, args.think_ms, args.perf)
                runs[(tree, mode[0])].append(result)
    plain_of = {web: label for label, route, _, web in modes if route == "/plain"}
    results = []
    for tree in trees:
        for label, _, _, web in modes:
            result = summarise(runs[(tree, label)], runs[(tree, plain_of[web])])
            result["label"] = tree + result["label"]
            results.append(result)
    pause = f", each connection pausing {args.think_ms} ms between requests" if args.think_ms else ""
    print(
        f"\nwrk -t2 -c8 -d{args.duration}s{pause} on {os.cpu_count()} cores, {args.rounds} rounds, medians; CPU per"
        " request is the machine's busy time (drain included) over the requests served; the audit's"
        " cost is taken against the plain run of the same round (lowest-highest in brackets), and"
        " counted in plain requests (that round's plain CPU per request), which the machine's drift"
        " moves less\n"
    )
    rows = []
    for r in results:
        low, high = r["cost_range"]
        audited = [
            f"{r['ratio']:.2f}×",
            f"{r['cost']:.0f} µs ({low:.0f}-{high:.0f})",
            f"{r['in_plains']:.2f}",
            f"{r['calls']:.2f}",
            f"{r['per_batch']:.0f}",
            f"{r['rows']:,} of {r['requests']:,}+",
        ]
        ratio, cost, in_plains, calls, per_batch, stored = audited if r["audited"] else [""] * len(audited)
        if not r["stores"]:  # the floor: no event, so no pushes, batches or rows to show
            calls = per_batch = stored = ""
        latency = f"{r['p50']:.2f} / {r['p99']:.2f}"
        figures = [f"{r['rate']:,.0f}", ratio, latency, f"{r['cpu_us']:.0f} µs", cost]
        rows.append([r["label"], *figures, in_plains, calls, per_batch, stored])
    header = ["mode", "requests/s", "vs plain", "p50 / p99 ms", "machine CPU per request"]
    header += ["audit's cost per event", "in plain requests", "Redis calls per event"]
    print_table([*header, "events per batch", "events stored"], rows)
    names = list(results[0]["groups"])
    print("\nwhere the CPU went, µs per request (medians):\n")
    print_table(
        ["mode", *names, "busiest web process's share of gunicorn CPU"],
        [
            [r["label"], *(f"{r['groups'][n]:.0f}" for n in names), f"{100 * r['busiest']:.0f}%"]
            for r in results
        ],
    )
    names = list(results[0]["switches"])
    print("\ncontext switches per request, while wrk ran (medians; every thread of each part):\n")
    print_table(
        ["mode", *names], [[r["label"], *(f"{r['switches'][n]:.2f}" for n in names)] for r in results]
    )
    if args.think_ms:  # the targets are set for wrk at full speed
        print("\ntargets: judged only at full load (without --think-ms)")
    else:
        print_targets(trees, results)
        print_floors(trees, results)
    print_kernel_time(results)
    for r in results:
        for part, spots in r["spots"].items():
            if not spots:
                continue
            print(
                f"\nhot spots of the {part}, {r['label']} (share of samples on CPU in the function itself):\n"
            )
            for name, share in spots:
                print(f"  {share:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so that every process the bench started is
    # stopped by its finally blocks instead of left running to skew the next measurement
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
