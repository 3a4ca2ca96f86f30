"""`flask audit verify`: the chain of seals and every row under it, or one proof file offline."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click
import orjson
from flask.cli import with_appcontext

from flask_audit.cli.operate import NullStream
from flask_audit.formats.escaping import for_terminal
from flask_audit.integrity import proofs
from flask_audit.integrity.canonical import count_after, timestamp_text
from flask_audit.integrity.verify import verify
from flask_audit.runtime import current_runtime


@click.command("verify")
@click.option("--since", help="ISO 8601: verify the seals made from then on (anchored by the one before).")
@click.option("--until", help="ISO 8601: verify the seals made until then.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.option(
    "--proof",
    "proof_file",
    type=click.File("rb"),
    help="Check a proof (GET <api>/<event_id>/proof) offline instead of the database.",
)
@with_appcontext
def verify_command(since: str | None, until: str | None, as_json: bool, proof_file) -> None:
    """Check that no sealed row was changed, removed or added, and that no seal was changed,
    removed, reordered or forged. Exit 0 when intact, 1 when anything is wrong."""
    runtime = current_runtime()
    if proof_file is not None:
        _check_proof(proof_file.read(), runtime.signer, as_json)
        return
    store = runtime.store
    total = count_after(store, 0)
    to_terminal = sys.stderr.isatty() and not as_json
    with click.progressbar(
        length=total, label="verifying", file=sys.stderr if to_terminal else NullStream()
    ) as bar:
        report = verify(
            store,
            runtime.signer,
            since=_iso(since, "--since"),
            until=_iso(until, "--until"),
            progress=bar.update,
        )
    if as_json:
        click.echo(orjson.dumps(report.as_dict()).decode())
    else:
        for problem in report.problems:
            click.echo(f"{problem.kind}: {for_terminal(problem.detail)}")
        click.echo(("intact: " if report.ok else "TAMPERED: ") + report.summary())
    sys.exit(0 if report.ok else 1)


def _check_proof(raw: bytes, signer, as_json: bool) -> None:
    try:
        result = proofs.check(orjson.loads(raw), signer)
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"not a proof: {exc}", param_hint="--proof") from None
    if as_json:
        click.echo(orjson.dumps(result).decode())
    else:
        for line in result["problems"]:
            click.echo(f"problem: {for_terminal(line)}")
        verdict = "valid" if result["ok"] else "INVALID"
        click.echo(f"{verdict}: event {result['event_id']} in seal {result['seal']} ({result['signature']})")
    sys.exit(0 if result["ok"] else 1)


def _iso(value: str | None, option: str) -> str | None:
    """An ISO 8601 time as seals record it (UTC, microseconds, Z), for comparison."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=option) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return timestamp_text(moment)
