"""Looking after who may get in: list, disable and enable console users; list and revoke API
tokens; generate a secret key. (``user create`` and ``token create`` are in ``admin``.)"""

from __future__ import annotations

import secrets

import click

from notifier.cli.admin import token, user
from notifier.cli.output import as_dict, emit_json, emit_table
from notifier.cli.root import acting, actor_of, app_of, main

USER_COLUMNS = ("id", "email", "role", "locations", "status", "created", "last_sign_in")
TOKEN_COLUMNS = ("id", "name", "user", "scope", "locations", "status", "created", "revoked")


@user.command("list")
@acting
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """List console users, active and disabled."""
    rows = [as_dict(view) for view in app_of(ctx).accounts.users(actor=actor_of(ctx))]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, USER_COLUMNS)


@user.command("disable")
@acting
@click.option("--email", required=True, help="The user's sign-in address.")
@click.pass_context
def user_disable(ctx: click.Context, email: str) -> None:
    """Stop a user signing in; their open console sessions end at once."""
    view, ended = app_of(ctx).accounts.disable_user(email, actor=actor_of(ctx))
    plural = "" if ended == 1 else "s"
    click.echo(f"user {view.id} disabled: {view.email} ({ended} session{plural} ended)")


@user.command("enable")
@acting
@click.option("--email", required=True, help="The user's sign-in address.")
@click.pass_context
def user_enable(ctx: click.Context, email: str) -> None:
    """Let a disabled user sign in again."""
    view = app_of(ctx).accounts.enable_user(email, actor=actor_of(ctx))
    click.echo(f"user {view.id} enabled: {view.email}")


@token.command("list")
@acting
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List API tokens by id and name, and whose a personal token is (the tokens themselves
    are never stored)."""
    rows = [as_dict(view) for view in app_of(ctx).accounts.tokens(actor=actor_of(ctx))]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, TOKEN_COLUMNS)


@token.command("revoke")
@acting
@click.option("--name", help="The name given at creation (when one live token has it).")
@click.option("--id", "token_id", type=int, help="The id from `notifier token list`.")
@click.pass_context
def token_revoke(ctx: click.Context, name: str | None, token_id: int | None) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    view = app_of(ctx).accounts.revoke_token(name=name, token_id=token_id, actor=actor_of(ctx))
    click.echo(f"token {view.id} revoked: {view.name}")


@main.group()
def secret() -> None:
    """NOTIFIER_SECRET_KEY."""


@secret.command("generate")
def secret_generate() -> None:
    """Print a new random key for NOTIFIER_SECRET_KEY (64 URL-safe characters)."""
    click.echo(secrets.token_urlsafe(48))
