"""Setting up: the database schema, the settings check, console users and API tokens."""

from __future__ import annotations

import sys

import click

from notifier import channels
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.domain.urls import mask_url_secrets
from notifier.settings import load_settings


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create the database if need be and apply migrations (`notifier serve` does too)."""
    app = app_of(ctx, migrate=True)
    click.echo(f"database: {mask_url_secrets(app.settings.database_url)}")
    click.echo("database is up to date")


@main.command("config")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Check the settings and the database, show which channels are enabled (secrets are never
    printed). Exit 3 when the database is missing, unreachable or not migrated."""
    settings = load_settings()
    for name, status in channels.statuses(settings).items():
        click.echo(f"{name}: {'enabled' if status.enabled else status.reason}")
    click.echo(f"database: {mask_url_secrets(settings.database_url)}")
    http = f"{settings.http_host}:{settings.http_port}" if settings.http_enabled else "disabled"
    public = mask_url_secrets(settings.public_base_url) if settings.public_base_url else "not set"
    click.echo(f"http: {http}; public URL: {public}")
    signing = "set" if settings.secret_key else "not set (no unsubscribe links)"
    click.echo(f"secret key: {signing}; quiet hours: {settings.quiet_hours}")
    app_of(ctx)  # a missing, unreachable or unmigrated database: one line, exit 3
    click.echo("database: reachable, schema up to date")


@main.group()
def user() -> None:
    """Web console users."""


def _slugs(text: str | None) -> list[str] | None:
    """``--locations cova,cova-north`` as slugs; None (every location) when not given."""
    return [slug.strip() for slug in text.split(",") if slug.strip()] if text else None


LOCATIONS_HELP = "Slugs, comma-separated, e.g. cova,cova-north (default: every location)."


@user.command("create")
@acting
@click.option("--email", required=True, help="The address the user signs in with.")
@click.option(
    "--role",
    type=click.Choice(["admin", "manager", "viewer"]),
    required=True,
    help="admin: every location, users and tokens; manager: create and cancel notices, "
    "import patients, in their locations; viewer: read-only, in their locations.",
)
@click.option("--locations", default=None, help=LOCATIONS_HELP)
@click.pass_context
def user_create(ctx: click.Context, email: str, role: str, locations: str | None) -> None:
    """Add a console user. The password is prompted for, or read from stdin when piped."""
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    view = app_of(ctx).accounts.create_user(
        email, role, password, _slugs(locations), actor=actor_of(ctx)
    )
    click.echo(f"user {view.id} created: {view.email} ({view.role})")


@main.group()
def token() -> None:
    """Bearer tokens for the JSON API (/api/v1)."""


@token.command("create")
@acting
@click.option("--name", required=True, help="Who or what uses it, e.g. 'clinic website'.")
@click.option(
    "--sees-patients",
    is_flag=True,
    help="It may read patients' names and addresses (the log's patient field, not-reached).",
)
@click.option("--locations", default=None, help=LOCATIONS_HELP)
@click.option(
    "--scope",
    type=click.Choice(["read", "send"]),
    default="send",
    show_default=True,
    help="read: notices, the log and summaries only; send: also create, send, cancel, import.",
)
@click.option(
    "--user",
    "user_email",
    default=None,
    help="A personal token: it acts as this console user (their role and locations, narrowed "
    "by --locations; it stops working when they are disabled), and may approve notices.",
)
@click.pass_context
def token_create(
    ctx: click.Context,
    name: str,
    sees_patients: bool,
    locations: str | None,
    scope: str,
    user_email: str | None,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored). Without --user it is a
    service token, acting as itself (it can never approve a notice)."""
    accounts = app_of(ctx).accounts
    click.echo(
        accounts.create_token(
            name, sees_patients, _slugs(locations), scope, user_email, actor=actor_of(ctx)
        )
    )
    click.echo("store it now: it cannot be shown again", err=True)
