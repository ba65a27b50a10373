"""The audit trail: who did or read what, when and from where."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from notifier.cli.output import as_dict, emit_rows
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.errors import ValidationError

AUDIT_COLUMNS = ("id", "at", "actor", "ip", "action", "target", "count", "outcome", "via")


@main.command("audit")
@acting
@click.option("--since", default=None, help="ISO time, e.g. 2025-02-19 or 2025-02-19T08:00Z.")
@click.option(
    "--actor", "of", default=None, help="Only this actor: user:3, token:2, operator, or an email."
)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def audit(ctx: click.Context, since: str | None, of: str | None, fmt: str) -> None:
    """The audit trail, oldest first (admins only): ids and counts, never patients' data."""
    app = app_of(ctx)
    if of is not None and "@" in of:
        of = app.accounts.actor_for_email(of).label
    events = app.audit.events(actor_of(ctx), _since(since), of)
    emit_rows(fmt, [as_dict(e) for e in events], AUDIT_COLUMNS)


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--since {text!r} is not an ISO date or time", "since") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)
