"""The Dramatiq side: the broker, the drain actor and the worker heartbeat, declared per app.

Actors are declared with an explicit broker by ``declare``, never at import time, so nothing can
bind to Dramatiq's default localhost broker by accident and two apps can live in one process.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from flask_audit.errors import DatabaseUnavailable, TransientStoreError
from flask_audit.pipeline.batching import batch_size_for
from flask_audit.pipeline.brokers import build_broker
from flask_audit.pipeline.drain import Drainer
from flask_audit.queue.redis_queue import Batch
from flask_audit.runtime import AuditRuntime
from flask_audit.streams.sender import StreamSender
from flask_audit.vocabulary import Vocabulary

logger = logging.getLogger(__name__)

#: name of the drain actor in Dramatiq
DRAIN_ACTOR = "audit_drain"
#: the worker's cyclic-GC thresholds (the defaults are 700, 10, 10)
WORKER_GC_THRESHOLDS = (20_000, 50, 1000)


class WorkerTuning(Middleware):
    """Once the worker has booted: freeze what start-up allocated and collect garbage less often.

    A batch allocates thousands of short-lived dicts, which set off the cyclic collector every few
    hundred events, each time walking the whole heap of the worker. Measured in this repository
    (bench/run.py), that cost about a sixth of the drain's speed.
    """

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WORKER_GC_THRESHOLDS)


class Heartbeat(Middleware):
    """Writes this worker process's heartbeat so monitoring can tell a worker is running."""

    def __init__(self, runtime: AuditRuntime) -> None:
        self.runtime = runtime
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        threading.Thread(target=self._beat, name="audit-heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        try:
            self.runtime.background_metrics.forget_worker(self.worker_id)
        except Exception:  # a stale heartbeat goes stale by itself
            pass

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.runtime.background_metrics.heartbeat(self.worker_id)
            except Exception as exc:  # keep beating: Redis may come back
                logger.warning("heartbeat failed: %s", exc)
            self._stop.wait(self.runtime.config.worker_heartbeat_seconds)


class _LoopThread(Middleware):
    """A loop of its own in each worker process, started after boot and stopped before shutdown;
    not on a Dramatiq worker thread, so that whatever it waits on never holds up a drain."""

    name = "audit-loop"

    def __init__(self, runtime: AuditRuntime) -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def loop(self) -> Callable[[threading.Event], None]:
        """The loop to run; it returns once the event is set."""
        raise NotImplementedError

    def join_seconds(self) -> float:
        return 10.0

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.loop(), args=(self._stop,), name=self.name, daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.join_seconds())


class FollowRedisServer(_LoopThread):
    """Hands a worker's in-flight drain messages back to Dramatiq when the broker's Redis is
    replaced (a Sentinel failover, or a restart that kept its data).

    Dramatiq's Redis broker files the messages a worker fetched under the worker's id until it
    acknowledges them. A new master may hold an older copy of that state, in which messages this
    worker already acknowledged are still filed under its id; as the worker lives on, Dramatiq
    never hands them back, and they count as pending forever (the clock would stop sending drains
    once they reach AUDIT_MAX_PENDING_DRAINS). When the server's ``run_id`` changes, the worker
    takes a new id: the old one stops beating, and Dramatiq's own maintenance requeues what it
    held once the heartbeat timeout passes. Redelivered drains are harmless (the insert is
    idempotent).
    """

    name = "audit-follow-redis"

    def __init__(self, runtime: AuditRuntime, broker: dramatiq.Broker) -> None:
        super().__init__(runtime)
        self.broker = broker
        self.run_id: str | None = None

    def check(self) -> bool:
        """Read the server's run_id; take a new worker id when it changed. Returns whether it did."""
        run_id = str(self.broker.client.info("server")["run_id"])  # type: ignore[attr-defined]
        changed = self.run_id is not None and run_id != self.run_id
        self.run_id = run_id
        if changed:
            old, self.broker.broker_id = self.broker.broker_id, str(uuid.uuid4())  # type: ignore[attr-defined]
            logger.warning(
                "the broker's Redis server changed (failover or restart): drain messages held as "
                "worker %s go back to the queue after the heartbeat timeout",
                old,
            )
        return changed

    def loop(self) -> Callable[[threading.Event], None]:
        def run(stop: threading.Event) -> None:
            while not stop.wait(min(2.0, self.runtime.config.worker_heartbeat_seconds)):
                try:
                    self.check()
                except Exception as exc:  # Redis is down: the next check after it returns sees it
                    logger.debug("broker server check failed: %s", exc)

        return run


class StreamThread(_LoopThread):
    """Runs the log stream's sender (``AUDIT_STREAM_URL``): a stalled endpoint holds up nothing."""

    name = "audit-stream"

    def __init__(self, runtime: AuditRuntime, vocabulary: Vocabulary | None) -> None:
        super().__init__(runtime)
        self.vocabulary = vocabulary

    def loop(self) -> Callable[[threading.Event], None]:
        metrics = self.runtime.background_metrics

        def record(fields: dict[str, Any]) -> None:
            try:
                metrics.record_stream(fields)
            except Exception:  # Redis down: the counters miss a batch, the stream goes on
                pass

        return StreamSender(self.runtime.store, self.runtime.config, self.vocabulary, record).run

    def join_seconds(self) -> float:
        return self.runtime.config.stream_timeout_seconds + 1


class OutboxThread(_LoopThread):
    """Relays the tracked models' outboxes (``audit.track``)."""

    name = "audit-outbox"

    def __init__(self, runtime: AuditRuntime, engines: Callable[[], list[Any]]) -> None:
        super().__init__(runtime)
        self.engines = engines

    def loop(self) -> Callable[[threading.Event], None]:
        from flask_audit.integrations.outbox import OutboxRelay

        return OutboxRelay(self.engines, self.runtime, self.runtime.config.drain_interval_seconds).run


class _LastWrite:
    """Whether this process's last drain reached the database (shared by its worker threads)."""

    ok = True


@dataclass
class AuditActors:
    drain: dramatiq.Actor


def declare(
    broker: dramatiq.Broker,
    runtime: AuditRuntime,
    vocabulary: Vocabulary | None = None,
    outbox_engines: Callable[[], list[Any]] | None = None,
) -> AuditActors:
    """Declare the drain actor on ``broker`` and add the heartbeat; the log stream when
    configured (``vocabulary`` maps its OCSF classes) and the outbox relay when models are
    tracked (``outbox_engines`` lists their databases). Returns the actors."""
    config = runtime.config
    last_write = _LastWrite()

    def audit_drain(batch_size: int) -> None:
        """Drain one batch of at most ``batch_size`` events.

        A full batch that leaves a backlog of at least another batch sends one successor message
        as soon as it is claimed, so a deep queue is drained at the workers' pace rather than the
        clock's, with the next claim overlapping this write. Each message sends at most one
        successor, so the number pending never grows past what the clock sent. The successor is
        at least this batch's size: the clock may have sized it by the traffic, not the depth.

        A message that fails is retried, so it is still pending: had it sent a successor, each
        failed attempt would add one. Successors are therefore sent only while this process's
        last write succeeded; after a failure, the clock alone sends drains until one succeeds.
        """

        def chain(batch: Batch) -> None:
            if last_write.ok and len(batch.entries) == batch_size and batch.remaining >= batch_size:
                actor.send(max(batch_size, batch_size_for(batch.remaining, config.batch_tiers)))

        try:
            result = Drainer(runtime.background_queue, runtime.store).drain_once(
                int(batch_size), on_claim=chain
            )
        except TransientStoreError as exc:
            last_write.ok = False
            raise DatabaseUnavailable(str(exc)) from None
        last_write.ok = True
        logger.debug("drained %d: %d inserted, %d failed", result.claimed, result.inserted, result.failed)

    actor = dramatiq.Actor(
        audit_drain,
        broker=broker,
        actor_name=DRAIN_ACTOR,
        queue_name=config.dramatiq_queue,
        priority=0,
        options={
            "max_retries": 1000,
            "min_backoff": 500,
            "max_backoff": config.retry_max_backoff_seconds * 1000,
            "retry_when": lambda retries, exc: isinstance(exc, DatabaseUnavailable),
        },
    )
    broker.add_middleware(Heartbeat(runtime))
    if isinstance(broker, RedisBroker):
        broker.add_middleware(FollowRedisServer(runtime, broker))
    broker.add_middleware(WorkerTuning())
    if config.stream_url:
        broker.add_middleware(StreamThread(runtime, vocabulary))
    if outbox_engines is not None:
        broker.add_middleware(OutboxThread(runtime, outbox_engines))
    return AuditActors(drain=actor)


def setup(
    runtime: AuditRuntime,
    *,
    make_global: bool = True,
    vocabulary: Vocabulary | None = None,
    outbox_engines: Callable[[], list[Any]] | None = None,
) -> tuple[dramatiq.Broker, AuditActors]:
    """Build the broker of ``runtime``, optionally make it Dramatiq's global one (the ``dramatiq``
    command reads that), and declare the actors on it."""
    broker = build_broker(runtime)
    if make_global:
        dramatiq.set_broker(broker)
    return broker, declare(broker, runtime, vocabulary, outbox_engines)
