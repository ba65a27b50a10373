"""The ``notifier`` command group: a thin layer over the use cases; every error is one clear
line on stderr and an exit status (2 bad input, 3 bad configuration or an unusable database,
4 rows rejected)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from notifier.bootstrap import App, build_app
from notifier.domain.actors import Actor
from notifier.errors import ConfigurationError, NotifierError, ValidationError
from notifier.logs import configure_logging
from notifier.settings import load_settings

F = TypeVar("F", bound=Callable[..., Any])


class NotifierGroup(click.Group):
    """Turns Notifier's own errors into one line on stderr and a non-zero exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(3)
        except ValidationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except NotifierError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception:  # a bug or a driver's error: its text may quote patients' data
            # Through the log formatter, which withholds database DETAIL and masks addresses.
            logging.getLogger("notifier").critical("unexpected error", exc_info=True)
            sys.exit(1)


AS_HELP = (
    "Act as this console user, with their role and locations (default: the operator, who "
    "sees every location)."
)


def _remember_as(ctx: click.Context, _param: click.Parameter, email: str | None) -> None:
    if email is not None:
        ctx.find_root().ensure_object(dict)
        ctx.find_root().obj["as"] = email


def acting(command: F) -> F:
    """Give a command ``--as EMAIL`` (read by ``actor_of``)."""
    option = click.option(
        "--as",
        "as_email",
        metavar="EMAIL",
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_remember_as,
        help=AS_HELP,
    )
    return option(command)


@click.group(cls=NotifierGroup)
@acting
@click.pass_context
def main(ctx: click.Context) -> None:
    """Notifier: closure notices for clinics, sent by SMS and email."""
    ctx.ensure_object(dict)
    configure_logging("WARNING")


def actor_of(ctx: click.Context) -> Actor:
    """Who runs this command: the operator (every location), or the console user ``--as``
    names (their role and locations; an unknown or disabled one is an error)."""
    email: str | None = ctx.find_root().obj.get("as")
    if email is None:
        return Actor.operator()
    return app_of(ctx).accounts.actor_for_email(email)


def app_of(ctx: click.Context, migrate: bool = False) -> App:
    """The app, built once per command from the settings. Only ``db upgrade`` and ``serve``
    pass ``migrate`` (create the database, apply migrations); every other command refuses a
    database that is missing, unreachable or not migrated, with one line and exit status 3."""
    root = ctx.find_root()
    app: App | None = root.obj.get("app")
    if app is None:
        app = build_app(load_settings(), migrate=migrate)
        root.obj["app"] = app
        root.call_on_close(app.close)
    return app
