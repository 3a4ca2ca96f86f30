"""Operator commands: inspect and requeue failed events, expire old rows, export."""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timedelta, timezone
from typing import IO, Any

import click
import orjson
from flask import current_app
from flask.cli import with_appcontext

from flask_audit.errors import AuditValidationError
from flask_audit.formats import FORMATS, Formatter, formatter
from flask_audit.formats.escaping import for_terminal
from flask_audit.formats.lines import CSV_COLUMNS, csv_row
from flask_audit.integrity.sealer import checkpoint
from flask_audit.queue.failed import FailedList
from flask_audit.runtime import current_runtime
from flask_audit.storage.pgexport import copy_jsonl
from flask_audit.storage.query import EQUALITY_FILTERS, count, parse_filters, stream, to_dict
from flask_audit.storage.retention import expire


def _failed() -> FailedList:
    runtime = current_runtime()
    return FailedList(runtime.background_redis, runtime.config)


@click.group(
    "failed",
    help="Events the database refused: list them, requeue them once the cause is fixed, or purge them.",
)
def failed_cli() -> None:
    pass


@failed_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, every field.")
@click.option("--limit", type=int, default=None, help="Only the newest N.")
@with_appcontext
def failed_list(as_json: bool, limit: int | None) -> None:
    """Show each failed event: its record id, when, the error, attempts and a short view."""
    records = _failed().records(limit)
    for record in records:
        if as_json:
            _echo(orjson.dumps(record.data).decode())
            continue
        data = record.data
        entry = str(data.get("entry", ""))
        _echo(f"{record.id}  {data.get('failed_at', '?')}  attempts={data.get('attempts', '?')}")
        _echo(f"    error: {data.get('error')}")
        _echo(f"    event: {entry[:160]}{'...' if len(entry) > 160 else ''}")
    if not as_json:
        click.echo(f"{len(records)} failed event(s). Requeue with: flask audit failed requeue ID... | --all")


@failed_cli.command("requeue")
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Requeue every failed event.")
@with_appcontext
def failed_requeue(ids: tuple[str, ...], everything: bool) -> None:
    """Put failed events back on the queue (drained next), after the cause is fixed."""
    if not ids and not everything:
        raise click.UsageError("name record ids (from `failed list`) or pass --all")
    moved = _failed().requeue(None if everything else list(ids))
    click.echo(f"requeued {moved} event(s)")


@failed_cli.command("purge")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def failed_purge(yes: bool) -> None:
    """Forget every failed event (they are not in the database: this deletes them for good)."""
    if not yes:
        click.confirm("Delete every failed event for good?", abort=True)
    click.echo(f"purged {_failed().purge()} failed event(s)")


@click.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=0),
    default=None,
    help="Age in days (default: AUDIT_RETENTION_DAYS).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def purge(days: int | None, dry_run: bool, yes: bool) -> None:
    """Delete audit rows older than the retention, in chunks so the table stays usable."""
    runtime = current_runtime()
    days = runtime.config.retention_days if days is None else days
    store = runtime.store
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    total = store.count_older_than(cutoff)
    click.echo(f"{total} row(s) older than {days} days (before {cutoff.isoformat(timespec='seconds')})")
    if store.partitioned:
        click.echo("partitioned by month: whole months that ended by then are dropped")
    if dry_run or total == 0:
        return
    if not yes and sys.stdin.isatty():
        click.confirm(f"Delete {total} row(s)?", abort=True)
    checkpoint(store, runtime.signer, cutoff)  # the chain records the purge before it happens
    with click.progressbar(length=total, label="purging", file=sys.stderr) as bar:
        result = expire(store, cutoff, chunk=runtime.config.purge_chunk, progress=bar.update)
    if result.partitions_dropped:
        click.echo(f"dropped partitions: {', '.join(result.partitions_dropped)}")
    click.echo(f"deleted {result.rows_deleted} row(s)")


def _filter_options(command: Any) -> Any:
    """One ``--<field>`` option per declared equality filter, as the query API has them."""
    for name in reversed(EQUALITY_FILTERS):
        command = click.option(f"--{name.replace('_', '-')}", name, help=f"Rows whose {name} is this.")(
            command
        )
    return command


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*FORMATS, "csv"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the stored events; ocsf, cloudevents, splunk-hec: one such JSON object per line.",
)
@click.option("--since", help="ISO 8601; rows created at or after it.")
@click.option("--until", help="ISO 8601; rows created before it.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), help="File (default: stdout)."
)
@_filter_options
@with_appcontext
def export(fmt: str, since: str | None, until: str | None, output: str | None, **equal: str | None) -> None:
    """Stream rows in created_at order, in constant memory, as JSON lines (stored, OCSF,
    CloudEvents or Splunk HEC) or CSV."""
    args = {k: v for k, v in equal.items() if v is not None and k in EQUALITY_FILTERS}
    args.update({k: v for k, v in (("since", since), ("until", until)) if v})
    try:
        filters = parse_filters(args)
    except AuditValidationError as exc:
        raise click.BadParameter(exc.rule, param_hint=f"--{exc.field.replace('_', '-')}") from None
    store = current_runtime().store
    # the server makes the JSON lines itself (storage.pgexport), unless they go to a terminal,
    # which needs escaping
    by_server = fmt == "jsonl" and store.is_postgres and (output is not None or not _is_terminal(sys.stdout))
    if by_server:
        out: Any = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        if not output:
            sys.stdout.flush()
    else:
        out = open(output, "w", newline="") if output else sys.stdout  # noqa: SIM115
    try:
        total = count(store, filters) if output else None
        with click.progressbar(
            length=total or 0, label="exporting", file=sys.stderr if output else NullStream()
        ) as bar:
            if by_server:
                written = copy_jsonl(store, filters, out, bar.update)
            else:
                written = _write(fmt, stream(store, filters), out, bar.update, _formatter(fmt))
    finally:
        if output:
            out.close()
        elif by_server:
            out.flush()
    if output:
        click.echo(f"exported {written} row(s) to {output}", err=True)


def _formatter(fmt: str) -> Formatter | None:
    if fmt == "csv":
        return None
    audit = current_app.extensions["audit"]
    return formatter(fmt, audit.vocabulary, current_runtime().config.event_source or "/flask-audit")


def _write(fmt: str, rows: Any, out: IO[str], progress: Any, shape: Formatter | None = None) -> int:
    """Write rows as JSON lines or CSV; CSV cells never start a formula, and a terminal never
    receives a control character."""
    written = 0
    if _is_terminal(out):
        out = _TerminalSafe(out)
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = to_dict(row)
        if writer:
            writer.writerow(csv_row(data))
        else:
            out.write(orjson.dumps(shape(data) if shape else data).decode() + "\n")
        written += 1
        if written % 1000 == 0:
            progress(1000)
    progress(written % 1000)
    return written


def _is_terminal(out: Any) -> bool:
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):
        return False


class _TerminalSafe:
    """Wraps a terminal stream: control characters in what is written are shown, not obeyed."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(for_terminal(text))

    def flush(self) -> None:
        self.stream.flush()


def _echo(text: str) -> None:
    """click.echo for text that may hold what a client sent."""
    click.echo(for_terminal(text) if _is_terminal(sys.stdout) else text)


class NullStream:
    """A stream that swallows a progress bar that has nowhere to go (the export on stdout, a
    verification into a pipe)."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def register(group: click.Group) -> None:
    group.add_command(failed_cli)
    group.add_command(purge)
    group.add_command(export)
