"""Data that expires (``retention run``) and patients forgotten on request (``patients
forget``)."""

from __future__ import annotations

import click

from notifier.cli.imports import patients
from notifier.cli.root import acting, actor_of, app_of, main


@main.group()
def retention() -> None:
    """Erase what is older than NOTIFIER_RETENTION_DAYS (serve does it hourly)."""


@retention.command("run")
@acting
@click.pass_context
def retention_run(ctx: click.Context) -> None:
    """Erase addresses and provider error texts of deliveries older than
    NOTIFIER_RETENTION_DAYS (states, counts, codes and times stay)."""
    app = app_of(ctx)
    done = app.retention.run(actor_of(ctx))
    click.echo(
        f"{done.deliveries} deliveries erased, {done.ledger} consent-ledger entries hashed "
        f"(older than {app.settings.retention_days} days)"
    )
    if done.ledger_kept:
        click.echo(
            f"warning: {done.ledger_kept} consent-ledger entries that old keep their addresses: "
            "set NOTIFIER_SECRET_KEY so that retention can replace them by a keyed hash",
            err=True,
        )


@patients.command("forget")
@acting
@click.argument("external_id")
@click.pass_context
def patients_forget(ctx: click.Context, external_id: str) -> None:
    """Erase a patient's name, phone, email and the addresses of their messages, on their
    request; an opt-out of theirs keeps working (a keyed hash of the address stays)."""
    done = app_of(ctx).retention.forget(actor_of(ctx), external_id)
    click.echo(
        f"patient {done.patient} forgotten: {done.deliveries} deliveries erased, "
        f"{done.suppressed} opt-out(s) kept by keyed hash"
    )
