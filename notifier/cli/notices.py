"""Closure notices: create, preview, list, update, cancel, retry, and the appointments a
closure affects."""

from __future__ import annotations

import click

from notifier.bootstrap import App
from notifier.cli.output import as_dict, emit_json, emit_rows, print_preview
from notifier.cli.plans import PLAN_COLUMNS, plan_lines, plan_rows
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.cli.watching import notice_watch
from notifier.domain.notices import Period, ReasonCode
from notifier.usecases.notice_requests import NoticeRequest
from notifier.usecases.views import NOT_REACHED_COLUMNS, Preview

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


def _preview(app: App, preview: Preview) -> None:
    print_preview(preview, {name: spec.label for name, spec in app.deps.channels.items()})


@main.group()
def notice() -> None:
    """Closure notices: create, preview, list, update, cancel, retry."""


@notice.command("create")
@acting
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
@click.option(
    "--reason",
    default="",
    help="e.g. 'inclement weather', in the location's language (with --reason-code: extra "
    "words beside the category's).",
)
@click.option(
    "--reason-code",
    type=click.Choice([c.value for c in ReasonCode]),
    default=None,
    help="The reason as a category, worded in every template language.",
)
@click.option("--reason-es", default=None, help="The reason's free text in Spanish.")
@click.option(
    "--kind",
    type=click.Choice(["closure", "early-close", "delayed-open"]),
    default=None,
    help="Defaults to what the times and business hours say.",
)
@click.option("--message", default=None, help="Custom wording instead of the generated text.")
@click.option("--message-es", default=None, help="The custom wording in Spanish.")
@click.option(
    "--send-at",
    default=None,
    help="'now' or 'YYYY-MM-DD HH:MM' in the location's zone. Without it the notice is a "
    "draft: preview it, then `notifier notice send ID --send-at ...`.",
)
@click.option(
    "--channels",
    default=None,
    help="e.g. 'sms,email,voice' (default: every channel but voice: a call only when named).",
)
@click.option(
    "--fallback",
    default=None,
    help="e.g. 'sms>voice>email': a patient a channel cannot reach for good (a landline cannot "
    "take a text) is tried on the next channel they consented to, once.",
)
@click.option(
    "--reminder-at",
    default=None,
    help="Send the same message again at 'YYYY-MM-DD HH:MM' (e.g. the morning of the closure).",
)
@click.option(
    "--reminder-audience",
    type=click.Choice(["recipients", "everyone"]),
    default="recipients",
    show_default=True,
    help="recipients: whom the first message reached; everyone: the audience at reminder time.",
)
@click.option(
    "--urgent/--not-urgent",
    default=None,
    help="Texts ignore quiet hours. Default: urgent when the closure starts on the day of sending.",
)
@click.option(
    "--publish-at",
    default=None,
    help="Show it on the public page and feeds from 'YYYY-MM-DD HH:MM' (location's zone). "
    "Default: once queued (now, or when a draft is sent).",
)
@click.option(
    "--no-publish",
    "private",
    is_flag=True,
    help="Keep it off the public page, banner and feeds.",
)
@click.option(
    "--emergency",
    is_flag=True,
    help="Send without a second manager's approval (recorded and flagged); needs "
    "--emergency-reason.",
)
@click.option("--emergency-reason", default=None, help="Why this cannot wait for approval.")
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
    reason_code: str | None,
    reason_es: str | None,
    kind: str | None,
    message: str | None,
    message_es: str | None,
    send_at: str | None,
    channels: str | None,
    fallback: str | None,
    reminder_at: str | None,
    reminder_audience: str,
    urgent: bool | None,
    publish_at: str | None,
    private: bool,
    emergency: bool,
    emergency_reason: str | None,
    as_json: bool,
) -> None:
    """Plan a closure notice and its broadcast (and a reminder): a draft, or queued to go
    out with --send-at."""
    app = app_of(ctx)
    if emergency_reason is not None and not emergency:
        raise click.UsageError("--emergency-reason goes with --emergency")
    if emergency and emergency_reason is None:
        raise click.UsageError("--emergency needs --emergency-reason TEXT (recorded on the notice)")
    request = NoticeRequest(
        location=location_slug,
        starts=starts,
        ends=ends,
        intervals=intervals,
        reason=reason,
        kind=kind,
        message=message,
        send_at=send_at,
        channels=tuple(channels.split(",")) if channels else (),
        urgent=urgent,
        audience=audience,
        reminder_at=reminder_at,
        reminder_audience=reminder_audience,
        publish_at=publish_at,
        private=private,
        fallback=fallback,
        emergency_reason=emergency_reason,
        reason_code=reason_code,
        reason_texts={"es": reason_es} if reason_es is not None else {},
        message_texts={"es": message_es} if message_es is not None else {},
    )
    created = app.notices.create(actor_of(ctx), request)
    view = created.notice
    if as_json:
        emit_json(as_dict(view))
        return
    click.echo(f"notice {view.id} ({view.state}) at {view.location}: {view.starts} → {view.ends}")
    for b in view.broadcasts:
        when = "not scheduled" if b.status == "draft" else f"at {b.send_at}"
        fallback = f", fallback {'>'.join(b.fallback)}" if b.fallback else ""
        click.echo(f"  broadcast {b.id}: {','.join(b.channels)} {when}{fallback}")
    _preview(app, created.preview)
    if view.needs_approval and view.approved_by is None:
        click.echo(
            f"\nawaiting approval: more patients than NOTIFIER_APPROVAL_THRESHOLD; nothing is "
            f"sent until another manager runs: notifier notice approve {view.id} --as EMAIL "
            f"(see the plan: notifier notice plan {view.id})"
        )
    if view.emergency_reason:
        click.echo(f"\nemergency send without approval, recorded: {view.emergency_reason}")
    if send_at is None:
        click.echo(
            f"\nnothing is sent until: notifier notice send {view.id} --send-at now "
            "(or 'YYYY-MM-DD HH:MM')"
        )


@notice.command("send")
@acting
@click.argument("notice_id", type=int)
@click.option(
    "--send-at", required=True, help="'now' or 'YYYY-MM-DD HH:MM' in the location's zone."
)
@click.pass_context
def notice_send(ctx: click.Context, notice_id: int, send_at: str) -> None:
    """Schedule a draft notice: its broadcast goes out at --send-at."""
    view, warnings = app_of(ctx).notices.send(actor_of(ctx), notice_id, send_at)
    for warning in warnings:
        click.echo(f"warning: {warning}")
    first = view.broadcasts[0]
    click.echo(f"notice {view.id} ({view.state}): broadcast {first.id} at {first.send_at}")


@notice.command("preview")
@acting
@click.argument("notice_id", type=int)
@click.option("--channel", default=None, help="Only this channel's messages.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_preview(ctx: click.Context, notice_id: int, channel: str | None, as_json: bool) -> None:
    """Show exactly what patients will receive."""
    app = app_of(ctx)
    preview = app.previews.of_notice(actor_of(ctx), notice_id, channel)
    if as_json:
        emit_json(as_dict(preview))
    else:
        _preview(app, preview)


@notice.command("list")
@acting
@click.option("--location", "location_slug", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_list(ctx: click.Context, location_slug: str | None, as_json: bool) -> None:
    """List notices under Upcoming, Now and Past, each as what it is ("upcoming closure",
    "open after all · sent"); a broadcast that failed is shown under its notice, with why."""
    views = app_of(ctx).notices.all(actor_of(ctx), location_slug)
    if as_json:
        emit_json([as_dict(v) for v in views])
        return
    for period in Period:
        listed = [v for v in views if v.period == period]
        if period is Period.PAST:
            listed.reverse()  # most recent first
        if not listed:
            continue
        click.echo(f"{period.value.capitalize()}:")
        for v in listed:
            click.echo(
                f"  {v.id}\t{v.location}\t{v.state}\t{v.starts[:16]} → {v.ends[:16]}\t"
                + " · ".join(part for part in (v.reason_code, v.reason) if part)
            )
            if v.hold_seconds_left is not None:
                click.echo(
                    f"    sends in {v.hold_seconds_left} s (undo window until "
                    f"{(v.held_until or '')[11:19]}): notifier notice cancel {v.id}"
                )
            for b in v.broadcasts:
                if b.status == "failed":
                    click.echo(f"    broadcast {b.id} failed: {b.status_reason}")


@notice.command("cancel")
@acting
@click.argument("notice_id", type=int)
@click.option(
    "--notify",
    is_flag=True,
    help="Tell the patients it already reached that the clinic is open after all.",
)
@click.pass_context
def notice_cancel(ctx: click.Context, notice_id: int, notify: bool) -> None:
    """Cancel a notice: nothing more of it is sent (in the undo window: nothing at all)."""
    view = app_of(ctx).notices.cancel(actor_of(ctx), notice_id, notify=notify)
    if view.id != notice_id:
        click.echo(
            f"notice {notice_id} cancelled; notice {view.id} (version {view.version}) tells "
            "the patients it reached that the clinic is open after all"
        )
    else:
        click.echo(f"notice {view.id} cancelled")


@notice.command("retry")
@acting
@click.argument("notice_id", type=int)
@click.pass_context
def notice_retry(ctx: click.Context, notice_id: int) -> None:
    """Schedule again the broadcasts of a notice whose fan-out failed (after fixing the cause)."""
    count = app_of(ctx).notices.retry(actor_of(ctx), notice_id)
    click.echo(f"{count} failed broadcast(s) of notice {notice_id} scheduled again")


@notice.command("update")
@acting
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
    """New times or wording: a new version, worded with the location's hours as they are now;
    unsent copies of the old one are withdrawn and only patients the old one reached are told."""
    app = app_of(ctx)
    view = app.notices.update(
        actor_of(ctx),
        notice_id,
        starts=starts,
        ends=ends,
        intervals=intervals,
        reason=reason,
        message=message,
    )
    if as_json:
        emit_json(as_dict(view))
        return
    click.echo(
        f"notice {view.id} (version {view.version}, supersedes {view.supersedes_id}, "
        f"{view.change}): {view.starts} → {view.ends}"
    )
    _preview(app, app.previews.of_notice(actor_of(ctx), view.id))


@notice.command("affected")
@acting
@click.argument("notice_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def notice_affected(ctx: click.Context, notice_id: int, fmt: str) -> None:
    """Appointments inside the closure, for the front desk to reschedule."""
    rows = [as_dict(v) for v in app_of(ctx).notices.affected(actor_of(ctx), notice_id)]
    emit_rows(fmt, rows, AFFECTED_COLUMNS)


@notice.command("not-reached")
@acting
@click.argument("notice_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def notice_not_reached(ctx: click.Context, notice_id: int, fmt: str) -> None:
    """Patients this notice did not reach (undelivered, failed, skipped, expired), with their
    phone and email, for the front desk to call. Unmasked: for managers only."""
    rows = [as_dict(v) for v in app_of(ctx).deliveries.not_reached(actor_of(ctx), notice_id)]
    emit_rows(fmt, rows, NOT_REACHED_COLUMNS)


@notice.command("plan")
@acting
@click.argument("notice_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.pass_context
def notice_plan(ctx: click.Context, notice_id: int, fmt: str) -> None:
    """Before anything is sent: per channel who will get a message and who will not and why,
    quiet hours, languages, segments, cost, and when the first and last messages go out."""
    plan = app_of(ctx).plans.of_notice(actor_of(ctx), notice_id)
    if fmt == "json":
        emit_json(as_dict(plan))
    elif fmt == "csv":
        emit_rows("csv", plan_rows(plan), PLAN_COLUMNS)
    else:
        for line in plan_lines(plan):
            click.echo(line)


@notice.command("approve")
@acting
@click.argument("notice_id", type=int)
@click.pass_context
def notice_approve(ctx: click.Context, notice_id: int) -> None:
    """Let a notice awaiting approval go out (a second manager, named with --as EMAIL; never
    its creator, never the operator)."""
    app, actor = app_of(ctx), actor_of(ctx)
    view = app.notices.approve(actor, notice_id)
    first = view.broadcasts[0]
    click.echo(
        f"notice {view.id} approved by {actor.name}: broadcast {first.id} at {first.send_at}, "
        f"after the {app.settings.send_hold_seconds:g} s undo window"
    )


@notice.command("history")
@acting
@click.argument("notice_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notice_history(ctx: click.Context, notice_id: int, as_json: bool) -> None:
    """Who created, approved, sent alone or cancelled the notice and its versions, and when."""
    entries = app_of(ctx).notices.history(actor_of(ctx), notice_id)
    if as_json:
        emit_json([as_dict(e) for e in entries])
        return
    for e in entries:
        detail = f" ({e.detail})" if e.detail else ""
        click.echo(f"{e.at[:19]}  notice {e.notice_id} v{e.version}  {e.action} by {e.by}{detail}")


notice.add_command(notice_watch)
