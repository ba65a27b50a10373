"""The delivery log, and re-queueing failed deliveries."""

from __future__ import annotations

import click

from notifier.cli.output import as_dict, emit_json, emit_rows, emit_table
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.usecases.views import DELIVERY_CSV_COLUMNS

PATIENT_COLUMNS = ("patient", "patient_name")

# The table leaves out what only a spreadsheet has room for.
TABLE_COLUMNS = tuple(
    c for c in DELIVERY_CSV_COLUMNS if c not in {"error_code", "segments", "sent_at", "updated_at"}
)


@main.group("deliveries", invoke_without_command=True)
@acting
@click.option("--notice", "notice_id", type=int, default=None)
@click.option("--status", "state", default=None, help="pending, sent, delivered, failed, ...")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option(
    "--show-patients",
    is_flag=True,
    help="Name each message's patient (external id and name): for managers, not for exports "
    "that leave the building.",
)
@click.pass_context
def deliveries(
    ctx: click.Context, notice_id: int | None, state: str | None, fmt: str, show_patients: bool
) -> None:
    """The delivery log: every message, its state, attempts, and its error or why it waits
    (addresses masked)."""
    if ctx.invoked_subcommand is not None:
        return
    log = app_of(ctx).deliveries.log(
        actor_of(ctx), notice_id, state, show_patients=show_patients, export=fmt == "csv"
    )
    rows = [as_dict(v) for v in log]
    if not show_patients:
        for row in rows:
            row.pop("patient"), row.pop("patient_name")
    columns = DELIVERY_CSV_COLUMNS if fmt == "csv" else TABLE_COLUMNS
    emit_rows(fmt, rows, (*columns, *PATIENT_COLUMNS) if show_patients else columns)


EVENT_COLUMNS = ("at", "kind", "state", "attempt", "code", "detail")


@deliveries.command("show")
@acting
@click.argument("delivery_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def deliveries_show(ctx: click.Context, delivery_id: int, fmt: str) -> None:
    """One delivery (address masked) and every event it went through, oldest first: queued,
    each attempt, the provider's reports, errors with their codes."""
    delivery, events = app_of(ctx).deliveries.history(actor_of(ctx), delivery_id)
    if fmt == "json":
        emit_json({"delivery": as_dict(delivery), "events": [as_dict(e) for e in events]})
        return
    emit_table([as_dict(delivery)], TABLE_COLUMNS)
    click.echo()
    emit_table([as_dict(e) for e in events], EVENT_COLUMNS)


@deliveries.command("retry")
@acting
@click.option("--notice", "notice_id", type=int, default=None, help="Only this notice's.")
@click.pass_context
def deliveries_retry(ctx: click.Context, notice_id: int | None) -> None:
    """Re-queue failed deliveries (never for a cancelled notice or an ended closure)."""
    count = app_of(ctx).deliveries.retry_failed(actor_of(ctx), notice_id)
    click.echo(f"{count} failed deliveries re-queued")
