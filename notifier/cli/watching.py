"""``notifier notice watch``: a notice's sending as it happens, until it is over. A progress bar
(rich) in a terminal; one plain line per change when the output is piped or logged."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from notifier.cli.root import acting, actor_of, app_of
from notifier.domain.deliveries import BUCKETS
from notifier.domain.estimates import duration
from notifier.usecases.views import Progress as SendingProgress

Read = Callable[[], SendingProgress]


def line(p: SendingProgress) -> str:
    """``notice 3: 40/100 done (delivered 10, sent 30, queued 60, ...) · 5.0/s · ETA 12 s``."""
    counts = ", ".join(f"{label} {p.counts.get(label, 0)}" for label, _ in BUCKETS)
    pace = f" · {p.rate:.1f}/s" if p.rate else ""
    eta = f" · ETA {duration(p.eta_seconds)}" if p.eta_seconds and p.counts["queued"] else ""
    return f"notice {p.notice_id} ({p.state}): {p.done}/{p.total} done ({counts}){pace}{eta}"


def ending(p: SendingProgress) -> str:
    later = f"; next broadcast at {p.next_send_at}" if p.next_send_at else ""
    return f"done: {p.done}/{p.total} ({p.state}){later}"


def watch_plain(read: Read, interval: float, sleep: Callable[[float], None]) -> SendingProgress:
    """Print a line whenever the counts or the waits change, until it is over."""
    shown: object = None
    while True:
        progress = read()
        seen = (progress.counts, progress.waits, progress.state)
        if seen != shown:
            click.echo("\n".join([line(progress), *(f"  {w}" for w in progress.waits)]))
            shown = seen
        if progress.finished:
            return progress
        sleep(interval)


def watch_rich(read: Read, interval: float, sleep: Callable[[float], None]) -> SendingProgress:
    """A live bar of messages done out of all, with the counts, pace, ETA and waits."""
    console = Console(file=sys.stdout)
    columns = (
        TextColumn("[bold]notice {task.fields[notice]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("sending", total=None, notice="", detail="")
        while True:
            p = read()
            counts = " ".join(f"{label} {p.counts.get(label, 0)}" for label, _ in BUCKETS)
            pace = f" · {p.rate:.1f}/s" if p.rate else ""
            eta = f" · ETA {duration(p.eta_seconds)}" if p.eta_seconds else ""
            waits = "".join(f"\n  {w}" for w in p.waits)
            bar.update(
                task,
                total=p.total or None,
                completed=p.done,
                notice=p.notice_id,
                detail=f"{counts}{pace}{eta}{waits}",
            )
            if p.finished:
                return p
            sleep(interval)


@click.command("watch")
@acting
@click.argument("notice_id", type=int)
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds.")
@click.pass_context
def notice_watch(ctx: click.Context, notice_id: int, interval: float) -> None:
    """Follow a notice's sending (counts by state, pace, ETA, why messages wait) until it is
    over: a progress bar in a terminal, plain lines when piped."""
    app, actor = app_of(ctx), actor_of(ctx)

    def read() -> SendingProgress:
        return app.deliveries.progress(actor, notice_id)

    first = read()  # an unknown notice fails here, before any drawing
    if first.state.startswith("draft"):
        click.echo(f"notice {notice_id} is a draft: nothing is sent until `notice send`")
        return
    tty = sys.stdout.isatty()
    final = (watch_rich if tty else watch_plain)(read, interval, time.sleep)
    click.echo(ending(final))
