"""The ``notifier`` command line: a thin layer over the service; every error is one clear line."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from notifier import store
from notifier.bootstrap import App, build_app
from notifier.errors import ConfigurationError, NotifierError, ValidationError
from notifier.importer import import_patients
from notifier.logs import configure_logging
from notifier.service import DELIVERY_CSV_COLUMNS
from notifier.settings import load_settings

log = logging.getLogger("notifier")
F = TypeVar("F", bound=Callable[..., Any])


def _app(ctx: click.Context) -> App:
    app: App | None = ctx.obj.get("app")
    if app is None:
        app = build_app(load_settings())
        ctx.obj["app"] = app
        ctx.call_on_close(app.close)
    return app


def _emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _as_dict(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


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


@click.group(cls=NotifierGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Notifier: closure notices for clinics, sent by SMS and email."""
    ctx.ensure_object(dict)
    configure_logging("WARNING")


# --- db ---------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply migrations (also done automatically at every start)."""
    _app(ctx)
    click.echo("database is up to date")


# --- config -----------------------------------------------------------------------------------


@main.command("config")
def config_check() -> None:
    """Check the settings and show which channels are enabled (secrets are never printed)."""
    settings = load_settings()
    for name, status in settings.channel_statuses().items():
        click.echo(f"{name}: {'enabled' if status.enabled else status.reason}")
    click.echo(f"database: {settings.database_url.split('@')[-1]}")
    http = f"{settings.http_host}:{settings.http_port}" if settings.http_enabled else "disabled"
    click.echo(f"http: {http}; public URL: {settings.public_base_url or 'not set'}")
    signing = "set" if settings.secret_key else "not set (no unsubscribe links)"
    click.echo(f"secret key: {signing}; quiet hours: {settings.quiet_hours}")


# --- locations --------------------------------------------------------------------------------


@main.group()
def location() -> None:
    """Clinic locations: name, time zone, phone, business hours."""


@location.command("add")
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
    """Add a location, or update it if the slug exists."""
    view = _app(ctx).service.add_location(slug, name, tz, hours, phone, language)
    click.echo(f"location {view.slug}: {view.name} ({view.timezone}; {view.business_hours})")


@location.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def location_list(ctx: click.Context, as_json: bool) -> None:
    """List locations."""
    views = _app(ctx).service.list_locations()
    if as_json:
        _emit_json([_as_dict(v) for v in views])
        return
    for v in views:
        click.echo(f"{v.slug}\t{v.name}\t{v.timezone}\t{v.business_hours}\t{v.phone or '-'}")


# --- patients ---------------------------------------------------------------------------------


@main.group()
def patients() -> None:
    """Patients and their consent."""


@patients.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def patients_import(ctx: click.Context, file: Path) -> None:
    """Import patients from a CSV file (upsert by external_id)."""
    app = _app(ctx)
    with file.open(newline="", encoding="utf-8-sig") as stream:
        report = import_patients(app.db, app.clock, stream, app.settings.default_region)
    _report_import(file, report, "patients")


# --- notices ----------------------------------------------------------------------------------


@main.group()
def notice() -> None:
    """Closure notices: create, preview, list, cancel."""


@notice.command("create")
@click.option("--location", "location_slug", required=True)
@click.option("--starts", default=None, help="'YYYY-MM-DD HH:MM' in the location's zone.")
@click.option("--ends", default=None, help="'YYYY-MM-DD HH:MM' in the location's zone.")
@click.option(
    "--interval",
    "intervals",
    multiple=True,
    help="A closed interval 'YYYY-MM-DD HH:MM/YYYY-MM-DD HH:MM'; repeat for several.",
)
@click.option(
    "--audience",
    type=click.Choice(["everyone", "affected", "both"]),
    default="everyone",
    show_default=True,
    help="everyone: the general notice to all; affected: only patients with an appointment "
    "inside the closure, naming it; both: affected patients theirs, everyone else the general.",
)
@click.option("--reason", required=True, help="e.g. 'inclement weather'.")
@click.option(
    "--kind",
    type=click.Choice(["closure", "early-close", "delayed-open"]),
    default=None,
    help="Defaults to what the times and business hours say.",
)
@click.option("--message", default=None, help="Custom wording instead of the generated text.")
@click.option(
    "--send-at",
    default="now",
    show_default=True,
    help="'now' or 'YYYY-MM-DD HH:MM' in the location's zone.",
)
@click.option("--channels", default="sms,email", show_default=True)
@click.option(
    "--reminder-at",
    default=None,
    help="Send the same message again at 'YYYY-MM-DD HH:MM' (e.g. the morning of the closure).",
)
@click.option(
    "--urgent/--not-urgent",
    default=None,
    help="Texts ignore quiet hours. Default: urgent when the closure starts on the day of sending.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the created notice as JSON.")
@click.pass_context
def notice_create(
    ctx: click.Context,
    location_slug: str,
    starts: str | None,
    ends: str | None,
    intervals: tuple[str, ...],
    audience: str,
    reason: str,
    kind: str | None,
    message: str | None,
    send_at: str,
    channels: str,
    reminder_at: str | None,
    urgent: bool | None,
    as_json: bool,
) -> None:
    """Queue a closure notice and its broadcast (and a reminder)."""
    service = _app(ctx).service
    view = service.create_notice(
        location_slug,
        starts,
        ends,
        reason,
        kind,
        message,
        send_at,
        channels,
        urgent,
        intervals=intervals,
        audience=audience,
        reminder_at=reminder_at,
    )
    if as_json:
        _emit_json(_as_dict(view))
        return
    click.echo(f"notice {view.id} ({view.kind}) at {view.location}: {view.starts} → {view.ends}")
    for b in view.broadcasts:
        click.echo(f"  broadcast {b['id']}: {','.join(b['channels'])} at {b['send_at']}")  # type: ignore[arg-type]
    _print_preview(service.preview(view.id))


@notice.command("preview")
@click.argument("notice_id", type=int)
@click.option("--channel", type=click.Choice(["sms", "email"]), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_preview(ctx: click.Context, notice_id: int, channel: str | None, as_json: bool) -> None:
    """Show exactly what patients will receive."""
    preview = _app(ctx).service.preview(notice_id, channel)
    if as_json:
        _emit_json(_as_dict(preview))
    else:
        _print_preview(preview)


def _print_preview(preview: Any) -> None:
    for warning in preview.warnings:
        click.echo(f"warning: {warning}")
    for channel, seconds in preview.estimated_seconds.items():
        click.echo(f"estimated sending time, {channel}: {_duration(seconds)}")
    for sms in preview.sms:
        click.echo(
            f"\n--- SMS [{sms.language}, {sms.template}] {sms.characters} characters, "
            f"{sms.segments} segment(s), {sms.encoding}"
        )
        click.echo(sms.text)
    longest = preview.longest_sms
    if longest is not None:
        click.echo(
            f"\n--- longest SMS any patient gets [{longest.language}, {longest.template}]: "
            f"{longest.characters} characters, {longest.segments} segment(s), {longest.encoding}"
        )
        click.echo(longest.text)
    for email in preview.email:
        click.echo(f"\n--- email [{email.language}, {email.template}] Subject: {email.subject}")
        click.echo(email.text)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@notice.command("list")
@click.option("--location", "location_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_list(ctx: click.Context, location_slug: str | None, as_json: bool) -> None:
    """List notices."""
    views = _app(ctx).service.list_notices(location_slug)
    if as_json:
        _emit_json([_as_dict(v) for v in views])
        return
    for v in views:
        click.echo(f"{v.id}\t{v.location}\t{v.kind}\t{v.status}\t{v.starts} → {v.ends}\t{v.reason}")


@notice.command("cancel")
@click.argument("notice_id", type=int)
@click.option(
    "--notify",
    is_flag=True,
    help="Tell the patients it already reached that the clinic is open after all.",
)
@click.pass_context
def notice_cancel(ctx: click.Context, notice_id: int, notify: bool) -> None:
    """Cancel a notice: nothing more of it is sent."""
    view = _app(ctx).service.cancel_notice(notice_id, notify=notify)
    if view.id != notice_id:
        click.echo(
            f"notice {notice_id} cancelled; notice {view.id} (version {view.version}) tells "
            "the patients it reached that the clinic is open after all"
        )
    else:
        click.echo(f"notice {view.id} cancelled")


@notice.command("update")
@click.argument("notice_id", type=int)
@click.option("--starts", default=None, help="New start, 'YYYY-MM-DD HH:MM'.")
@click.option("--ends", default=None, help="New end, 'YYYY-MM-DD HH:MM'.")
@click.option("--interval", "intervals", multiple=True, help="New interval(s) 'START/END'.")
@click.option("--reason", default=None)
@click.option("--message", default=None, help="New custom wording.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_update(
    ctx: click.Context,
    notice_id: int,
    starts: str | None,
    ends: str | None,
    intervals: tuple[str, ...],
    reason: str | None,
    message: str | None,
    as_json: bool,
) -> None:
    """New times or wording: a new version; unsent copies of the old one are withdrawn and
    only patients the old one reached are told."""
    service = _app(ctx).service
    view = service.update_notice(
        notice_id, starts=starts, ends=ends, intervals=intervals, reason=reason, message=message
    )
    if as_json:
        _emit_json(_as_dict(view))
        return
    click.echo(
        f"notice {view.id} (version {view.version}, supersedes {view.supersedes_id}, "
        f"{view.change}): {view.starts} → {view.ends}"
    )
    _print_preview(service.preview(view.id))


@notice.command("affected")
@click.argument("notice_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def notice_affected(ctx: click.Context, notice_id: int, fmt: str) -> None:
    """Appointments inside the closure, for the front desk to reschedule."""
    rows = [_as_dict(v) for v in _app(ctx).service.affected(notice_id)]
    columns = AFFECTED_COLUMNS
    if fmt == "json":
        _emit_json(rows)
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        _print_table(rows, columns)


AFFECTED_COLUMNS = (
    "appointment",
    "patient",
    "first_name",
    "last_name",
    "starts",
    "ends",
    "provider",
    "status",
)


# --- appointments -----------------------------------------------------------------------------


@main.group()
def appointments() -> None:
    """Appointments, to tell patients which of theirs a closure affects."""


@appointments.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def appointments_import(ctx: click.Context, file: Path) -> None:
    """Import appointments from a CSV file (upsert by external_id; times in the location's zone)."""
    from notifier.appointments import import_appointments

    app = _app(ctx)
    with file.open(newline="", encoding="utf-8-sig") as stream:
        report = import_appointments(app.db, app.clock, stream)
    _report_import(file, report, "appointments")


def _report_import(file: Path, report: Any, noun: str) -> None:
    """Each rejected row as ``file:line (id): reason`` on stderr, the counts on stdout; exit 4
    when any row was rejected, so scripts can tell."""
    for error in report.errors:
        who = f" ({error.external_id})" if error.external_id else ""
        click.echo(f"{file.name}:{error.line}{who}: {error.reason}", err=True)
    click.echo(
        f"imported {report.imported} {noun} ({report.created} new, {report.updated} updated), "
        f"{len(report.errors)} rows rejected"
    )
    if report.errors:
        sys.exit(4)


# --- deliveries -------------------------------------------------------------------------------


@main.group("deliveries", invoke_without_command=True)
@click.option("--notice", "notice_id", type=int, default=None)
@click.option("--status", "state", default=None, help="pending, sent, delivered, failed, ...")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def deliveries(ctx: click.Context, notice_id: int | None, state: str | None, fmt: str) -> None:
    """The delivery log: every message, its state, attempts and errors (addresses masked)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = [_as_dict(v) for v in _app(ctx).service.delivery_log(notice_id, state)]
    if fmt == "json":
        _emit_json(rows)
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=DELIVERY_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        _print_table(
            rows,
            (
                "id",
                "notice_id",
                "notice_version",
                "supersedes_id",
                "channel",
                "address",
                "state",
                "attempts",
                "provider_id",
                "error",
            ),
        )


@deliveries.command("retry")
@click.option("--notice", "notice_id", type=int, default=None, help="Only this notice's.")
@click.pass_context
def deliveries_retry(ctx: click.Context, notice_id: int | None) -> None:
    """Re-queue failed deliveries (never for a cancelled notice or an ended closure)."""
    count = _app(ctx).service.retry_failed(notice_id)
    click.echo(f"{count} failed deliveries re-queued")


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[str(row.get(c) if row.get(c) is not None else "-") for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


# --- console users ----------------------------------------------------------------------------


@main.group()
def user() -> None:
    """Web console users."""


@user.command("create")
@click.option("--email", required=True, help="The address the user signs in with.")
@click.option(
    "--role",
    type=click.Choice(["manager", "viewer"]),
    required=True,
    help="manager: create and cancel notices, import patients; viewer: read-only.",
)
@click.pass_context
def user_create(ctx: click.Context, email: str, role: str) -> None:
    """Add a console user. The password is prompted for, or read from stdin when piped."""
    from notifier.accounts import Accounts

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    app = _app(ctx)
    view = Accounts(app.db, app.clock).create_user(email, role, password)
    click.echo(f"user {view.id} created: {view.email} ({view.role})")


# --- serve ------------------------------------------------------------------------------------


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
    from notifier import jobs  # the scheduler is only needed here

    settings = load_settings()
    configure_logging(settings.log_level)
    http_on = settings.http_enabled and not no_http
    if http_on and settings.public_base_url and settings.secret_key is None:
        raise ConfigurationError(
            "NOTIFIER_SECRET_KEY must be set when NOTIFIER_PUBLIC_BASE_URL is (it signs the "
            "unsubscribe links); e.g. `openssl rand -hex 32`"
        )
    app = _app(ctx)
    for name, status in settings.channel_statuses().items():
        if status.enabled:
            log.info("%s channel enabled", name)
        else:
            log.warning("%s", status.reason)
    dispatcher = app.dispatcher() if role in ("all", "worker") else None
    scheduler = jobs.configure(app, dispatcher, role)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing in-flight sends", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    http = None
    if http_on:
        from notifier.web.server import HttpServer

        http = HttpServer(app, settings.http_host, settings.http_port)
        http.start()
    scheduler.start()
    log.info(
        "notifier serving",
        extra={"role": role, "worker": dispatcher.worker_id if dispatcher else None},
    )
    try:
        while not stop.wait(settings.poll_interval_seconds):
            if until_idle and _idle(app):
                log.info("nothing scheduled or waiting: exiting (--until-idle)")
                break
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        scheduler.shutdown(wait=True)
        if dispatcher is not None:
            dispatcher.close()
        if http is not None:
            http.stop()
        log.info("notifier stopped")


# --- API tokens -------------------------------------------------------------------------------


@main.group()
def token() -> None:
    """Bearer tokens for the JSON API (/api/v1)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses it, e.g. 'clinic website'.")
@click.pass_context
def token_create(ctx: click.Context, name: str) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    from notifier.tokens import create_token

    app = _app(ctx)
    click.echo(create_token(app.db, app.clock, name))
    click.echo("store it now: it cannot be shown again", err=True)


@main.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
)
def demo(workdir: Path) -> None:
    """Run the reference closure end to end against local Twilio and SMTP servers."""
    try:
        from notifier_sandbox.demo import run_demo
    except ImportError:
        raise ConfigurationError(
            "the demo runs against the local servers of the sandbox package, which is not "
            "installed: `pip install -e ./sandbox` (`make demo` does it)"
        ) from None

    configure_logging("WARNING")
    run_demo(workdir)


def _idle(app: App) -> bool:
    with app.db.session() as s:
        return not store.scheduled_broadcasts_exist(s) and not store.has_open_deliveries(s)


if __name__ == "__main__":
    main()
