"""A notice's summary bar: its deliveries counted into buckets, and whether it still moves."""

from __future__ import annotations

from dataclasses import dataclass

from notifier.bootstrap import App
from notifier.domain.actors import Actor
from notifier.domain.deliveries import BUCKETS, DeliveryState
from notifier.domain.notices import BroadcastStatus, NoticeStatus
from notifier.usecases.views import NoticeView, Progress


@dataclass(frozen=True)
class Bucket:
    label: str
    count: int
    x: float  # percent
    width: float  # percent


@dataclass(frozen=True)
class Summary:
    total: int
    buckets: list[Bucket]
    by_channel: dict[str, dict[str, int]]
    sending: bool  # still moving: the page keeps refreshing the summary
    waits: list[str]  # why messages wait: "2 messages waiting: quiet hours: held until ..."
    progress: Progress  # counts, pace and ETA, as `notifier notice watch` shows them


def summary_of(app: App, actor: Actor, view: NoticeView) -> Summary:
    by_channel = app.deliveries.summary(actor, view.id)
    counts = {label: 0 for label, _ in BUCKETS}
    for states in by_channel.values():
        for state, count in states.items():
            for label, members in BUCKETS:
                if state in members:
                    counts[label] += count
    total = sum(counts.values())
    buckets, x = [], 0.0
    for label, _ in BUCKETS:
        width = 100.0 * counts[label] / total if total else 0.0
        buckets.append(Bucket(label, counts[label], round(x, 3), round(width, 3)))
        x += width
    scheduled = any(
        b.status in {BroadcastStatus.SCHEDULED, BroadcastStatus.SENDING} for b in view.broadcasts
    )
    # Messages in "sent" still await the provider's delivery report where the channel has them.
    awaiting_report = any(
        states.get(DeliveryState.SENT, 0) > 0
        for channel, states in by_channel.items()
        if channel in app.deps.channels and app.deps.channels[channel].reports
    )
    sending = counts["queued"] > 0 or scheduled or awaiting_report
    moving = sending and view.status != NoticeStatus.CANCELLED
    progress = app.deliveries.progress(actor, view.id)
    return Summary(total, buckets, by_channel, moving, progress.waits, progress)
