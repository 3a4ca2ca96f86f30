"""The ``flask audit`` command group: schema, drain, clock, status and spool replay."""

from __future__ import annotations

import logging

import click
import orjson
from flask import current_app
from flask.cli import with_appcontext

from flask_audit.cli.event_types import event_types_command
from flask_audit.cli.operate import register as register_operator_commands
from flask_audit.cli.verify import verify_command
from flask_audit.monitoring.health import assess, thresholds_of
from flask_audit.pipeline.batching import batch_size_for
from flask_audit.pipeline.drain import Drainer
from flask_audit.runtime import current_runtime
from flask_audit.storage import migrations


@click.group("audit", help="Audit log operations (flask-audit).")
def audit_cli() -> None:
    pass


@audit_cli.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create the latest schema on an empty database, or migrate an existing one. Safe to rerun."""
    runtime = current_runtime()
    outcome, applied = migrations.migrate(runtime.store)
    click.echo(f"audit_logs {outcome} on {runtime.store.database.__class__.__name__}")
    for migration in applied if outcome == "migrated" else []:
        click.echo(f"applied {migration.number:04d} {migration.name}")


@audit_cli.command("migrate")
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations only.")
@with_appcontext
def migrate_command(show_status: bool) -> None:
    """Apply pending schema migrations, each once (several processes may run this at once)."""
    store = current_runtime().store
    if show_status:
        current = migrations.status(store)
        for migration in migrations.MIGRATIONS:
            when = current.applied.get(migration.number)
            state = f"applied {when}" if when else "pending"
            click.echo(f"{migration.number:04d}  {state:<34} {migration.name}")
        click.echo(f"{len(current.applied)} applied, {len(current.pending)} pending")
        return
    outcome, applied = migrations.migrate(store)
    for migration in applied:
        click.echo(f"applied {migration.number:04d} {migration.name}")
    click.echo(f"audit_logs {outcome}: {len(applied)} migration(s) applied")
    tracker = current_app.extensions["audit"].tracker
    if tracker is not None:  # the outbox and triggers of the tracked models, in their databases
        for line in tracker.install():
            click.echo(line)


@audit_cli.command("drain")
@click.option(
    "--batch-size",
    type=int,
    default=None,
    help="Events per batch (default: the tier for the depth).",
)
@with_appcontext
def drain(batch_size: int | None) -> None:
    """Drain the queue into the database now, until it is empty (cron jobs, scripts, tests)."""
    runtime = current_runtime()
    queue = runtime.background_queue
    size = batch_size or batch_size_for(queue.depth(), runtime.config.batch_tiers)
    result = Drainer(queue, runtime.store).drain_all(size)
    click.echo(f"drained {result.claimed} events: {result.inserted} inserted, {result.failed} failed")


@audit_cli.command("scheduler")
@with_appcontext
def scheduler() -> None:
    """Run the clock: sends drain messages sized by the queue depth, reaps stuck batches."""
    # Imported here, not for a cycle but for the web process: only the clock needs APScheduler
    # and Dramatiq's broker, and every app that registers this command group would load them.
    from flask_audit.pipeline.clock import run_clock
    from flask_audit.pipeline.tasks import setup

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    runtime = current_runtime()
    broker, actors = setup(runtime)
    run_clock(runtime, broker, actors)


@audit_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@with_appcontext
def status(as_json: bool) -> None:
    """Show queue depth, throughput, failures and health at a glance."""
    runtime = current_runtime()
    snapshot = runtime.background_metrics.snapshot()
    assessment = assess(snapshot, thresholds_of(runtime.config))
    if as_json:
        body = {"health": assessment.__dict__, "metrics": snapshot.__dict__}
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"status      {assessment.status}")
    click.echo(f"queue       {snapshot.waiting} ({snapshot.priority_length} of them priority)")
    click.echo(f"batch size  {snapshot.current_batch_size}")
    click.echo(f"last minute {snapshot.inserts_last_minute} inserted, {snapshot.failures_last_minute} failed")
    click.echo(f"avg batch   {snapshot.avg_batch_time_ms} ms")
    click.echo(f"workers     {snapshot.workers_alive} alive")
    click.echo(f"failed list {snapshot.failed_length}")
    click.echo("totals      " + ", ".join(f"{k}={v}" for k, v in snapshot.totals.items()))
    for issue in assessment.issues:
        click.echo(f"issue       {issue}")


@audit_cli.command("replay-spool")
@with_appcontext
def replay_spool() -> None:
    """Send events spooled on this host (while Redis and the database were down) to the queue."""
    runtime = current_runtime()
    click.echo(f"replayed {runtime.write_path.replay_spool()} events from {runtime.spool.path}")


register_operator_commands(audit_cli)
audit_cli.add_command(verify_command)
audit_cli.add_command(event_types_command)
