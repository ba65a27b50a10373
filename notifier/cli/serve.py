"""Running the service, and the demo."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from notifier import channels
from notifier.cli.root import app_of, main
from notifier.domain.urls import mask_url_secrets
from notifier.errors import ConfigurationError
from notifier.logs import configure_logging
from notifier.runtime import Runtime
from notifier.settings import load_settings

log = logging.getLogger("notifier")


@main.command("serve")
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit once nothing is scheduled or waiting to be sent (demos, tests).",
)
@click.option("--no-http", is_flag=True, help="Do not start the HTTP service.")
@click.option(
    "--role",
    type=click.Choice(["all", "scheduler", "worker"]),
    default="all",
    show_default=True,
    help="scheduler: fire due broadcasts; worker: send; all: both. Run any number of each.",
)
@click.pass_context
def serve(ctx: click.Context, until_idle: bool, no_http: bool, role: str) -> None:
    """Run the service: fire due broadcasts, send their messages, answer HTTP (webhooks, API)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    http_on = settings.http_enabled and not no_http
    if http_on and settings.public_base_url and settings.secret_key is None:
        raise ConfigurationError(
            "NOTIFIER_SECRET_KEY must be set when NOTIFIER_PUBLIC_BASE_URL is (it signs the "
            "unsubscribe links); e.g. `openssl rand -hex 32`"
        )
    app = app_of(ctx, migrate=True)
    log.info("database %s", mask_url_secrets(settings.database_url))
    if problem := app.health.unnamed_help():
        log.warning("%s", problem, extra={"action": "help_unnamed"})
    for name, status in channels.statuses(settings).items():
        if status.enabled:
            log.info("%s channel enabled", name)
        else:
            log.warning("%s", status.reason)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: finishing in-flight sends", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with Runtime(app, role, http=http_on) as runtime:
        gc.freeze()  # what start-up built lives on: no full collection scans it again
        runtime.run(stop, until_idle=until_idle)


SANDBOX_MISSING = (
    "the local Twilio-compatible and SMTP servers are in the sandbox package, which is not "
    "installed (nor in the image): `pip install -e ./sandbox` in a checkout (`make setup` does it)"
)


@main.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
)
@click.option(
    "--serve",
    "keep_serving",
    is_flag=True,
    help="Afterwards keep the service (HTTP console on NOTIFIER_HTTP_PORT) and the local "
    "servers running, with a console user, until Ctrl-C.",
)
def demo(workdir: Path, keep_serving: bool) -> None:
    """Run the reference closure end to end against local Twilio and SMTP servers."""
    try:
        from notifier_sandbox.demo import run_demo
    except ImportError:
        raise ConfigurationError(SANDBOX_MISSING) from None

    configure_logging("WARNING")
    run_demo(workdir.absolute(), serve=keep_serving)


@main.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where both listen.")
@click.option("--twilio-port", type=int, default=8765, show_default=True, help="0: any free.")
@click.option("--smtp-port", type=int, default=8025, show_default=True, help="0: any free.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the settings to this file (for `--env-file` or `.env`).",
)
@click.option(
    "--public-host",
    help="The name others reach the servers by (e.g. a compose service name), if not --host.",
)
def sandbox(
    host: str, twilio_port: int, smtp_port: int, env_file: Path | None, public_host: str | None
) -> None:
    """Start the local Twilio-compatible and SMTP servers and print the settings that point
    `notifier serve` at them. Runs until Ctrl-C. For trying Notifier out, never for patients."""
    try:
        from notifier_sandbox.servers import run_sandbox
    except ImportError:
        raise ConfigurationError(SANDBOX_MISSING) from None

    configure_logging("WARNING")
    run_sandbox(host, twilio_port, smtp_port, env_file, public_host)
