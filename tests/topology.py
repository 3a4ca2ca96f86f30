"""A Redis master, its replica and three Sentinels on spare loopback ports, for failover tests.

Every server is a ``Process`` from the test's ``spawn`` fixture, so it is stopped by PID when the
test ends, whatever happened. Nothing is kept on disk but the Sentinels' own config files, in the
test's temporary folder.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.processes import Process, wait_for

MASTER_NAME = "audit-master"
#: how long Sentinels wait before they deem the master down, and give a failover up
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisTopology:
    def __init__(self, folder: Path, spawn: Callable[..., Process], env: dict[str, str]) -> None:
        self.folder = folder
        self.spawn = spawn
        self.env = env
        self.ports: dict[str, int] = {}
        self.processes: dict[str, Process] = {}

    # -- starting ------------------------------------------------------------------------------

    def start(self) -> RedisTopology:
        first, second = spare_port(), spare_port()
        self._server("redis-a", first)
        self._server("redis-b", second, replica_of=first)
        wait_for(lambda: self.link_up(second), 20, "the replica to sync with the master")
        for number in range(3):
            self._sentinel(f"sentinel-{number}", spare_port(), first)
        wait_for(lambda: self.sentinels_know_replica(), 20, "every Sentinel to see the replica")
        return self

    def _server(self, name: str, port: int, replica_of: int | None = None) -> Process:
        args = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        args += ["--dir", str(self.folder)]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.ports[name] = port
        self.processes[name] = self.spawn(name, args, self.env)
        wait_for(lambda: self._pings(port), 10, f"{name} to answer")
        return self.processes[name]

    def _sentinel(self, name: str, port: int, master_port: int) -> None:
        conf = self.folder / f"{name}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.ports[name] = port
        self.processes[name] = self.spawn(name, ["redis-server", str(conf), "--sentinel"], self.env)
        wait_for(lambda: self._pings(port), 10, f"{name} to answer")

    # -- reading -------------------------------------------------------------------------------

    @property
    def sentinel_setting(self) -> str:
        """The value of AUDIT_REDIS_SENTINELS for this topology."""
        return ",".join(
            f"127.0.0.1:{port}" for name, port in self.ports.items() if name.startswith("sentinel")
        )

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2)

    def _pings(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def link_up(self, replica_port: int) -> bool:
        try:
            return self.client(replica_port).info("replication").get("master_link_status") == "up"
        except redis.RedisError:
            return False

    def master_port(self) -> int | None:
        """The master's port as a majority of the Sentinels that answer say it."""
        votes: dict[int, int] = {}
        for name, port in self.ports.items():
            if not name.startswith("sentinel"):
                continue
            try:
                _host, master = self.client(port).execute_command(
                    "SENTINEL", "get-master-addr-by-name", MASTER_NAME
                )
            except (redis.RedisError, TypeError, ValueError):
                continue
            votes[int(master)] = votes.get(int(master), 0) + 1
        best = max(votes.items(), key=lambda item: item[1], default=(None, 0))
        return best[0] if best[1] >= 2 else None

    def sentinels_know_replica(self) -> bool:
        for name, port in self.ports.items():
            if name.startswith("sentinel"):
                try:
                    if not self.client(port).execute_command("SENTINEL", "replicas", MASTER_NAME):
                        return False
                except redis.RedisError:
                    return False
        return True

    def name_of(self, port: int) -> str:
        return next(name for name, known in self.ports.items() if known == port)

    # -- failing -------------------------------------------------------------------------------

    def kill_master(self) -> tuple[str, float]:
        """SIGKILL the master; returns its name and when (monotonic)."""
        name = self.name_of(self.master_port() or 0)
        self.processes[name].proc.kill()
        self.processes[name].proc.wait(5)
        return name, time.monotonic()

    def wait_for_new_master(self, old: str, timeout: float = 30) -> tuple[str, float]:
        """Wait until the Sentinels name another master; returns its name and when."""
        old_port = self.ports[old]
        wait_for(
            lambda: self.master_port() not in (None, old_port),
            timeout,
            "the Sentinels to promote the replica",
        )
        return self.name_of(self.master_port() or 0), time.monotonic()

    def restart_as_replica(self, name: str) -> None:
        """Start a killed server again, empty, as a replica of the master the Sentinels name (as
        an operator brings a failed node back)."""
        self._server(name, self.ports[name], replica_of=self.master_port())
