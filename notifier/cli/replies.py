"""Patients' replies: the inbox, answering, done, assignment and the closure auto-reply switch."""

from __future__ import annotations

import click

from notifier.cli.output import as_dict, emit_json
from notifier.cli.root import acting, actor_of, app_of, main
from notifier.usecases.conversation_views import ConversationView

AUTHORS = {"patient": "patient", "staff": "answer", "auto": "auto-reply"}


@main.group("replies")
def replies() -> None:
    """Patients' texts that are not keywords, and the answers to them."""


@replies.command("list")
@acting
@click.option("--location", default=None, help="Only this location's (slug).")
@click.option("--json", "as_json", is_flag=True, help="As JSON, with every message.")
@click.pass_context
def replies_list(ctx: click.Context, location: str | None, as_json: bool) -> None:
    """The conversations of your locations, newest first, each with its messages."""
    views = app_of(ctx).replies.conversations(actor_of(ctx), location)
    if as_json:
        emit_json([as_dict(v) for v in views])
        return
    if not views:
        click.echo("no conversations")
    for view in views:
        click.echo(_heading(view))
        for m in view.messages:
            state = "" if m.state in {"received", "sent"} else f" [{m.state}: {m.error or ''}]"
            body = m.body if m.body is not None else "(erased)"
            click.echo(f"  {m.at}  {AUTHORS.get(m.author, m.author)}: {body}{state}")


def _heading(view: ConversationView) -> str:
    who = view.patient_name or "unknown patient"
    if view.patient:
        who += f" ({view.patient})"
    flags = [f"{view.unread} unread"] if view.unread else []
    if view.done:
        flags.append("done")
    if view.opted_out:
        flags.append("opted out")
    if view.assigned_to:
        flags.append(f"assigned to {view.assigned_to}")
    if view.waiting_minutes is not None:
        flags.append(f"waiting {view.waiting_minutes} min")
    notice = f", answers notice {view.notice_id}" if view.notice_id else ""
    return f"#{view.id} {view.location or '(no location)'}: {who}, {view.number}{notice}" + (
        f" — {', '.join(flags)}" if flags else ""
    )


@replies.command("answer")
@acting
@click.argument("conversation_id", type=int)
@click.option("--message", required=True, help="The text to send.")
@click.pass_context
def replies_answer(ctx: click.Context, conversation_id: int, message: str) -> None:
    """Answer a conversation (managers): queued, then sent by the running service's worker
    from the number the patient wrote to (``notifier deliveries`` shows its state)."""
    queued = app_of(ctx).replies.answer(actor_of(ctx), conversation_id, message)
    click.echo(f"answer {queued.id} {queued.state}: the worker sends it")


@replies.command("done")
@acting
@click.argument("conversation_id", type=int)
@click.option("--reopen", is_flag=True, help="Open it again.")
@click.pass_context
def replies_done(ctx: click.Context, conversation_id: int, reopen: bool) -> None:
    """Mark a conversation done (it leaves the waiting list), or open it again."""
    view = app_of(ctx).replies.mark_done(actor_of(ctx), conversation_id, not reopen)
    click.echo(f"conversation {view.id} {'done' if view.done else 'open'}")


@replies.command("assign")
@acting
@click.argument("conversation_id", type=int)
@click.argument("email", required=False)
@click.pass_context
def replies_assign(ctx: click.Context, conversation_id: int, email: str | None) -> None:
    """Give a conversation to a user of its location (no EMAIL: to nobody)."""
    view = app_of(ctx).replies.assign(actor_of(ctx), conversation_id, email)
    click.echo(f"conversation {view.id} assigned to {view.assigned_to or 'nobody'}")


@replies.command("auto-reply")
@acting
@click.argument("location")
@click.argument("switch", type=click.Choice(["on", "off"]))
@click.pass_context
def replies_auto_reply(ctx: click.Context, location: str, switch: str) -> None:
    """Switch a location's closure auto-reply on or off."""
    saved = app_of(ctx).replies.set_auto_reply(actor_of(ctx), location, switch == "on")
    click.echo(f"auto-reply for {saved.slug}: {'on' if saved.auto_reply else 'off'}")
