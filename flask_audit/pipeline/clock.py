"""The clock: APScheduler jobs that send drains sized by depth, reap stuck batches, evaluate the
alert rules, replay the spool, prune heartbeats, seal new rows, verify the latest seals and expire
old rows. One clock leads at a time,
elected through Redis."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import dramatiq
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from flask_audit.integrity.canonical import count_after
from flask_audit.integrity.sealer import checkpoint, seal_pending
from flask_audit.integrity.seals import create_table as create_seals_table
from flask_audit.integrity.seals import latest as latest_seal
from flask_audit.integrity.verify import Report, verify
from flask_audit.monitoring.alerts import Alerter, Notice
from flask_audit.monitoring.health import findings, thresholds_of
from flask_audit.pipeline.batching import batch_size_for_load, drains_to_send
from flask_audit.pipeline.brokers import pending_drains
from flask_audit.pipeline.tasks import AuditActors
from flask_audit.queue.redis_queue import lua_script
from flask_audit.runtime import AuditRuntime
from flask_audit.storage.partitions import ensure_partitions
from flask_audit.storage.retention import expire
from flask_audit.streams.sender import lag as stream_lag

logger = logging.getLogger(__name__)

#: seconds between two reaper runs at most; shorter when the visibility timeout is short
REAP_INTERVAL = 5
#: seconds between two leadership renewals, and the lease is three of them
LEAD_INTERVAL = 2
#: seals the periodic verification walks back from the latest (each holds up to 1,024 rows)
VERIFY_RECENT_SEALS = 100


class Clock:
    """The jobs of one app's clock; ``schedule`` adds them to an APScheduler scheduler."""

    def __init__(self, runtime: AuditRuntime, broker: dramatiq.Broker, actors: AuditActors) -> None:
        self.runtime = runtime
        self.broker = broker
        self.actors = actors
        self.token = uuid.uuid4().hex
        self.is_leader = False
        config = runtime.config
        self.alerter = Alerter(
            runtime.background_redis,
            config.key("alerts"),
            config.alert_webhook_url,
            config.alert_cooldown_seconds,
            secret=config.alert_webhook_secret,
        )
        self._lead = runtime.background_redis.register_script(lua_script("lead.lua"))
        self._seals_ready = False

    def elect(self) -> bool:
        """Take or renew the leadership; only the leader's jobs do anything."""
        lease_ms = LEAD_INTERVAL * 3 * 1000
        try:
            won = bool(
                self._lead(keys=[self.runtime.config.key("clock:leader")], args=[self.token, lease_ms])
            )
        except Exception:
            self.is_leader = False  # the lease may lapse meanwhile: step down until renewed
            raise
        if won != self.is_leader:
            logger.info("clock %s %s the lead", self.token[:8], "took" if won else "lost")
        self.is_leader = won
        return won

    def tick(self) -> int:
        """Read the depth and the last minute's traffic, pick the batch size, send enough drains;
        returns how many were sent."""
        if not self.is_leader:
            return 0
        config = self.runtime.config
        depth = self.runtime.background_queue.depth()
        per_minute = self.runtime.background_metrics.inserts_last_minute()
        size = batch_size_for_load(depth, per_minute, config.batch_tiers, config.traffic_tiers)
        self.runtime.background_metrics.record_tick(depth, size)
        pending = pending_drains(self.broker, config.dramatiq_queue)
        count = drains_to_send(depth, size, pending, config.max_pending_drains)
        for _ in range(count):
            self.actors.drain.send(size)
        return count

    def reap(self) -> int:
        """Return batches whose worker died (never acknowledged past the visibility timeout)."""
        if not self.is_leader:
            return 0
        returned = self.runtime.background_queue.reap()
        if returned:
            logger.warning("returned %d events of unacknowledged batches to the queue", returned)
        return returned

    def housekeeping(self) -> None:
        """Replay a spool left on this host and forget long-dead workers."""
        if not self.is_leader:
            return
        replayed = self.runtime.write_path.replay_spool()
        if replayed:
            logger.info("replayed %d spooled events", replayed)
        self.runtime.background_metrics.prune_workers()

    def alert(self) -> list[Notice]:
        """Evaluate the alert rules; log and send what changed or is due again."""
        if not self.is_leader:
            return []
        if self.runtime.config.stream_url:
            try:
                seconds, undelivered = stream_lag(self.runtime.store)
                self.runtime.background_metrics.record_stream_lag(seconds, undelivered)
            except Exception as exc:  # the database is down: the other rules still run
                logger.warning("log stream lag not measured: %s", exc)
        snapshot = self.runtime.background_metrics.snapshot()
        return self.alerter.evaluate(findings(snapshot, thresholds_of(self.runtime.config)), time.time())

    def seal(self) -> int:
        """Seal the rows stored since the last seal (those audit.critical wrote too)."""
        if not self.is_leader:
            return 0
        if not self._seals_ready:
            create_seals_table(self.runtime.store)  # a database not migrated yet still gets sealed
            self._seals_ready = True
        return seal_pending(self.runtime.store, self.runtime.signer)

    def verify(self) -> Report | None:
        """Verify the latest seals and their rows; record the result (health, alerts, /metrics)."""
        if not self.is_leader:
            return None
        store = self.runtime.store
        latest = latest_seal(store)
        first = max(1, (latest.seq if latest else 1) - VERIFY_RECENT_SEALS + 1)
        report = verify(store, self.runtime.signer, from_seq=first)
        for problem in report.problems:
            logger.error("integrity: %s: %s", problem.kind, problem.detail)
        unsealed = count_after(store, latest.last_row_id if latest else 0)
        self.runtime.background_metrics.record_integrity(report.last_seq, len(report.problems), unsealed)
        return report

    def purge(self) -> int:
        """Expire rows older than AUDIT_RETENTION_DAYS; when partitioned, also create the months
        ahead. Returns the rows deleted."""
        if not self.is_leader:
            return 0
        store, days = self.runtime.store, self.runtime.config.retention_days
        cutoff = datetime.now(timezone.utc) - timedelta(days=days)
        checkpoint(store, self.runtime.signer, cutoff)  # the chain records the purge before it happens
        result = expire(store, cutoff, chunk=self.runtime.config.purge_chunk)
        logger.info(
            "retention: %d rows older than %d days purged; partitions dropped: %s",
            result.rows_deleted,
            days,
            ", ".join(result.partitions_dropped) or "none",
        )
        if store.partitioned:
            ensure_partitions(store)
        return result.rows_deleted

    def schedule(self, scheduler: BaseScheduler) -> None:
        """Add every job to ``scheduler``; each job runs alone (no overlap) and skips missed runs."""
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 30}
        self.elect()
        scheduler.add_job(
            self._safely(self.elect), "interval", seconds=LEAD_INTERVAL, id="audit-elect", **common
        )
        scheduler.add_job(
            self._safely(self.tick),
            "interval",
            seconds=self.runtime.config.drain_interval_seconds,
            id="audit-tick",
            **common,
        )
        scheduler.add_job(
            self._safely(self.reap),
            "interval",
            seconds=min(REAP_INTERVAL, max(0.5, self.runtime.config.visibility_timeout_seconds / 3)),
            id="audit-reap",
            **common,
        )
        scheduler.add_job(
            self._safely(self.housekeeping),
            "interval",
            seconds=30,
            id="audit-housekeeping",
            **common,
        )
        scheduler.add_job(
            self._safely(self.alert),
            "interval",
            seconds=self.runtime.config.alert_interval_seconds,
            id="audit-alerts",
            **common,
        )
        scheduler.add_job(
            self._safely(self.seal),
            "interval",
            seconds=self.runtime.config.seal_interval_seconds,
            id="audit-seal",
            **common,
        )
        if self.runtime.config.verify_interval_seconds > 0:
            scheduler.add_job(
                self._safely(self.verify),
                "interval",
                seconds=self.runtime.config.verify_interval_seconds,
                id="audit-verify",
                **common,
            )
        scheduler.add_job(self._safely(self.purge), "cron", hour=3, minute=17, id="audit-retention", **common)

    @staticmethod
    def _safely(job):
        """A job that fails (Redis down, say) logs and runs again next time; the clock lives on."""

        def run() -> None:
            try:
                job()
            except Exception as exc:  # Redis or the database down: try again next run
                logger.warning("%s failed: %s", job.__name__, exc)

        run.__name__ = run.__qualname__ = f"audit-{job.__name__}"
        return run


def run_clock(runtime: AuditRuntime, broker: dramatiq.Broker, actors: AuditActors) -> None:
    """Run the clock in the foreground until interrupted."""
    # APScheduler logs every run at INFO: once a second is noise, keep its warnings only.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = BlockingScheduler(timezone="UTC")
    Clock(runtime, broker, actors).schedule(scheduler)
    logger.info("audit clock started (interval %.2fs)", runtime.config.drain_interval_seconds)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
