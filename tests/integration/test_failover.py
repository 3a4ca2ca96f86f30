"""Redis failover under load: a master, a replica and three Sentinels on spare ports; the example
app under gunicorn, a worker and the clock, all finding the master through Sentinel
(AUDIT_REDIS_SENTINELS). While requests keep coming, the replica falls behind (SIGSTOP for
``LAG`` seconds, as a slow or cut-off replica would) and the master is SIGKILLed; the replica is
promoted, the processes follow without a restart, and the old master comes back as a replica.

The ledger: every request answered 201 has its row, once, or is lost. With
AUDIT_REDIS_WAIT_REPLICAS=1 nothing is lost (pushes the replica did not confirm were written
through). Without it, what the old master acknowledged while the replica lagged is lost: the test
counts it and checks that it all falls in that window.

Each run prints its figures (``-s`` shows them): the README's "Running at scale" quotes them.
"""

from __future__ import annotations

import signal
import time

import psycopg2
import pytest

from tests.load import Load, answers
from tests.processes import gunicorn, listening_socket, python, wait_for
from tests.topology import MASTER_NAME, RedisTopology

#: seconds of load before the kill, after it, and after the old master is back as a replica
BEFORE, DURING, AFTER = 3.0, 5.0, 4.0
#: seconds the replica is stopped before the master is killed
LAG = 0.8
#: bytes written to the master while the replica is stopped
FILLER_BYTES = 48 * 1024 * 1024


def stored_request_ids(pg_url: str) -> tuple[list[str], int]:
    """The request ids of the stored events, and how many distinct event ids there are."""
    conn = psycopg2.connect(pg_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT request_id, event_id::text FROM audit_logs WHERE event_type = 'api_key_created'"
            )
            found = cur.fetchall()
    finally:
        conn.close()
    return [row[0] for row in found], len({row[1] for row in found})


@pytest.mark.parametrize("wait_replicas", [1, 0], ids=["wait-1", "no-wait"])
def test_a_master_killed_under_load_fails_over_and_the_ledger_balances(
    service_env, spawn, pg_url, tmp_path, wait_replicas
):
    topology = RedisTopology(tmp_path, spawn, service_env).start()
    env = {key: value for key, value in service_env.items() if key != "AUDIT_REDIS_URL"}
    env.update(
        AUDIT_REDIS_SENTINELS=topology.sentinel_setting,
        AUDIT_REDIS_SENTINEL_MASTER=MASTER_NAME,
        AUDIT_REDIS_WAIT_REPLICAS=str(wait_replicas),
        AUDIT_REDIS_WAIT_TIMEOUT_MS="100",
        AUDIT_BREAKER_COOLDOWN_SECONDS="0.5",
    )
    sock = listening_socket()
    port = sock.getsockname()[1]
    spawn("web", gunicorn(sock, "examples.app:create_app()"), env, pass_fds=(sock.fileno(),))
    sock.close()
    worker = spawn("worker", python("-m", "dramatiq", "worker", "--processes", "1", "--threads", "2"), env)
    spawn("clock", python("-m", "flask", "audit", "scheduler"), env)
    base = f"http://127.0.0.1:{port}"

    wait_for(lambda: answers(base), 30, "gunicorn to answer")

    with Load(base) as load:
        time.sleep(BEFORE)
        before_kill = len(load.ok)
        replica = topology.name_of(
            next(
                p for n, p in topology.ports.items() if n.startswith("redis") and p != topology.master_port()
            )
        )
        topology.processes[replica].signal(signal.SIGSTOP)
        # More than the kernel's socket buffers hold: what the master acknowledges from now on
        # waits in its own memory, as when a replica is slow or cut off.
        topology.client(topology.master_port()).set(env["AUDIT_KEY_PREFIX"] + "filler", b"x" * FILLER_BYTES)
        lag_from = time.monotonic()
        time.sleep(LAG)
        old, killed_at = topology.kill_master()
        topology.processes[replica].signal(signal.SIGCONT)
        new, promoted_at = topology.wait_for_new_master(old)
        new_master = topology.client(topology.ports[new])
        enqueued_at_promotion = int(new_master.hget(env["AUDIT_KEY_PREFIX"] + "metrics", "enqueued") or 0)

        def queued_again() -> bool:
            return (
                int(new_master.hget(env["AUDIT_KEY_PREFIX"] + "metrics", "enqueued") or 0)
                > enqueued_at_promotion
            )

        first_push = None
        deadline = killed_at + BEFORE + DURING
        while time.monotonic() < deadline:
            if first_push is None and queued_again():
                first_push = time.monotonic()
            time.sleep(0.05)
        topology.restart_as_replica(old)
        wait_for(lambda: topology.link_up(topology.ports[old]), 30, "the old master to rejoin as a replica")
        rejoined_at = time.monotonic()
        while time.monotonic() < rejoined_at + AFTER:
            if first_push is None and queued_again():
                first_push = time.monotonic()
            time.sleep(0.05)
        assert first_push is not None, "no event reached the new master's queue"

    sent = set(load.ok)
    assert not load.errors, load.errors[:5]
    assert before_kill > 100 and len(sent) > 3 * before_kill

    def drained() -> bool:
        depth = new_master.llen(env["AUDIT_KEY_PREFIX"] + "queue") + new_master.llen(
            env["AUDIT_KEY_PREFIX"] + "priority"
        )
        return depth == 0 and new_master.zcard(env["AUDIT_KEY_PREFIX"] + "inflight") == 0

    wait_for(drained, 60, "the new master's queue to drain")
    # the worker noticed the new server and handed back what the old state still filed under it
    assert "the broker's Redis server changed" in worker.output()
    time.sleep(1)  # the last batch's commit
    request_ids, distinct_events = stored_request_ids(pg_url)
    assert len(request_ids) == distinct_events  # no event stored twice
    stored = set(request_ids)
    assert stored <= sent  # nothing stored that was not sent
    lost = sent - stored
    totals = {k.decode(): int(v) for k, v in new_master.hgetall(env["AUDIT_KEY_PREFIX"] + "metrics").items()}
    print(
        f"\nfailover (WAIT {wait_replicas}): {len(sent)} events answered 201; "
        f"replica promoted {promoted_at - killed_at:.2f} s after the kill; "
        f"first push reached the new master {first_push - killed_at:.2f} s after the kill "
        f"(old master back as a replica {rejoined_at - killed_at:.2f} s after it); "
        f"written through {totals.get('write_through', 0)}, unreplicated {totals.get('unreplicated', 0)}, "
        f"spooled {totals.get('spooled', 0)}; lost {len(lost)}"
    )
    if wait_replicas:
        assert lost == set(), sorted(lost)[:10]
        assert totals.get("unreplicated", 0) > 0  # WAIT saw the replica lag
    else:  # lost: what the old master acknowledged while its replica lagged, and only that
        assert lost
        assert all(lag_from <= load.ok[request_id] <= killed_at + 0.1 for request_id in lost)
