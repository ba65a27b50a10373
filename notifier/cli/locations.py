"""Clinic locations: add or change one, list them."""

from __future__ import annotations

import click

from notifier.cli.output import as_dict, emit_json
from notifier.cli.root import acting, actor_of, app_of, main


@main.group()
def location() -> None:
    """Clinic locations: name, time zone, phone, business hours."""


@location.command("add")
@acting
@click.option("--slug", required=True, help="Short id used everywhere else, e.g. cova.")
@click.option(
    "--name", required=True, help="Name patients know, e.g. 'COVA Spine and Pain Center'."
)
@click.option("--timezone", "tz", required=True, help="IANA zone, e.g. America/New_York.")
@click.option(
    "--hours",
    default="Mon-Fri 08:00-17:00",
    show_default=True,
    help="Business hours, e.g. 'Mon-Fri 08:00-17:00; Sat 09:00-12:00'.",
)
@click.option("--phone", default=None, help="The clinic's phone, shown in messages.")
@click.option("--language", default="en", show_default=True, help="Default message language.")
@click.pass_context
def location_add(
    ctx: click.Context,
    slug: str,
    name: str,
    tz: str,
    hours: str,
    phone: str | None,
    language: str,
) -> None:
    """Add a location, or change it if the slug exists. Queued notices keep their words; those
    the change would word differently are listed, with what to do."""
    saved = app_of(ctx).locations.save(actor_of(ctx), slug, name, tz, hours, phone, language)
    view = saved.location
    click.echo(f"location {view.slug}: {view.name} ({view.timezone}; {view.business_hours})")
    for reworded in saved.reworded:
        click.echo(f"\nnotice {reworded.notice_id} ({reworded.starts} → {reworded.ends}):")
        if reworded.before != reworded.stored:
            click.echo(f"  before this change: {reworded.before}")
        click.echo(f"  goes out as: {reworded.stored}")
        if reworded.with_new_settings not in (None, reworded.stored):
            click.echo(f"  updated to the new hours: {reworded.with_new_settings}")
        click.echo(f"  {reworded.advice}")


@location.command("list")
@acting
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def location_list(ctx: click.Context, as_json: bool) -> None:
    """List locations."""
    views = app_of(ctx).locations.all(actor_of(ctx))
    if as_json:
        emit_json([as_dict(v) for v in views])
        return
    for v in views:
        click.echo(f"{v.slug}\t{v.name}\t{v.timezone}\t{v.business_hours}\t{v.phone or '-'}")


@location.command("feeds")
@acting
@click.argument("slug")
@click.argument("switch", type=click.Choice(["on", "off"]))
@click.pass_context
def location_feeds(ctx: click.Context, slug: str, switch: str) -> None:
    """Turn a location's public page, banner and feeds (/public/SLUG...) on or off."""
    app = app_of(ctx)
    view = app.locations.set_public_feeds(actor_of(ctx), slug, switch == "on")
    base = (app.settings.public_base_url or "http://HOST").rstrip("/")
    if view.public_feeds:
        click.echo(f"location {view.slug}: public feeds on at {base}/public/{view.slug}")
    else:
        click.echo(f"location {view.slug}: public feeds off (/public/{view.slug} answers 404)")
