"""The plan of a broadcast, before anything is sent: per channel who will get a message and who
will not and why, quiet-hours deferrals, languages, SMS segments and the longest text, the cost,
and when the first and last messages go out.

The plan runs the fan-out itself (``fan_out_broadcast``, the very function ``Fanout`` fires a
broadcast with) inside a savepoint that is rolled back: every consent, opt-out, weekly-cap,
audience and disabled-channel decision is the fan-out's own, so plan and outcome agree one for
one. Quiet hours come from ``domain.quiet_hours.deferral`` and languages from
``rendering.messages.resolve_language``, as the dispatcher's preparation uses them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from notifier import channels as registry
from notifier.domain.actors import Actor
from notifier.domain.deliveries import DeliveryState
from notifier.domain.notices import WAITING
from notifier.domain.quiet_hours import QuietHours, deferral
from notifier.rendering.messages import resolve_language
from notifier.storage import notices as notice_rows
from notifier.storage import patients as patient_rows
from notifier.storage import recipients as recipient_rows
from notifier.storage.models import Broadcast, Notice
from notifier.usecases import Deps, UseCase
from notifier.usecases.lookups import require_notice
from notifier.usecases.previews import Previews
from notifier.usecases.views import MessagePreview


def fan_out_broadcast(
    deps: Deps, s: Session, broadcast: Broadcast, now: datetime
) -> dict[str, int]:
    """One delivery row per recipient and channel of ``broadcast`` (sent or skipped with the
    reason), in the caller's transaction; how many rows per channel. The fan-out's and the
    plan's one decision."""
    counts: dict[str, int] = {}
    for name in broadcast.channel_names:
        spec = deps.channels.get(name)
        if spec is None:
            raise LookupError(f"channel {name!r} is not registered in this version of Notifier")
        status = deps.statuses[name]
        counts[name] = recipient_rows.fan_out(
            s,
            broadcast,
            spec,
            now,
            None if status.enabled else status.reason,
            weekly_cap=registry.weekly_cap(spec, deps.settings),
        )
    return counts


@dataclass
class ChannelPlan:
    channel: str
    label: str
    send: int  # messages that will be sent
    skipped: dict[str, int] = field(default_factory=dict)  # reason → messages not sent
    deferred_until: str | None = None  # quiet hours hold the channel until (local time)
    units: int = 0  # SMS segments, or messages
    cost: float | None = None  # None: no price configured for the channel
    seconds: float = 0.0  # at the configured rate
    first_send: str | None = None  # local ISO times
    last_send: str | None = None
    longest: MessagePreview | None = None  # text channels: the text with the most segments
    # Patients with no (valid) address for the channel: outside the fan-out, so no delivery
    # row and no skip says so; counted here for the front desk.
    without_address: int = 0


@dataclass
class Plan:
    notice_id: int
    broadcast_id: int
    status: str  # the broadcast's: draft, awaiting_approval, scheduled, sending, done...
    dry_run: bool  # computed by a fan-out rolled back (False: the broadcast already went out)
    patients: int  # patients who will get at least one message
    channels: list[ChannelPlan]
    languages: dict[str, int]  # the language messages are written in → messages
    fallbacks: dict[str, int]  # "de → en": messages in the location's language for lack of text
    currency: str
    cost: float | None  # None: some channel has no price
    segments: int  # SMS segments in all
    first_send: str | None
    last_send: str | None
    warnings: list[str] = field(default_factory=list)
    approval_threshold: int = 0
    needs_approval: bool = False


class Plans(UseCase):
    def __init__(self, deps: Deps, previews: Previews) -> None:
        super().__init__(deps)
        self.previews = previews

    def of_notice(self, actor: Actor, notice_id: int) -> Plan:
        """The plan of the notice's first broadcast that has not gone out (or, when all have,
        what its first one did)."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            return self.of(s, notice)

    def of(self, s: Session, notice: Notice) -> Plan:
        """The plan, in the caller's transaction (nothing of the dry run is kept)."""
        broadcasts = notice.broadcasts
        waiting = [b for b in broadcasts if b.status in WAITING]
        broadcast = waiting[0] if waiting else broadcasts[0]
        starts = self.first_send_time(broadcast)
        if broadcast.fanned_out_at is None and broadcast.status in WAITING:
            savepoint = s.begin_nested()
            try:
                fan_out_broadcast(self.deps, s, broadcast, starts)
                return self._plan(s, notice, broadcast, starts, dry_run=True)
            finally:
                savepoint.rollback()
        return self._plan(s, notice, broadcast, starts, dry_run=False)

    def first_send_time(self, broadcast: Broadcast) -> datetime:
        """When the fan-out will take the broadcast: its send time or now (whichever is later),
        then the undo window."""
        hold = timedelta(seconds=self.settings.send_hold_seconds)
        return max(broadcast.send_at, self.clock.now()) + hold

    def _plan(
        self, s: Session, notice: Notice, broadcast: Broadcast, starts: datetime, dry_run: bool
    ) -> Plan:
        facts = notice_rows.facts(notice)
        closure = facts.closure
        tz = closure.tz
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        quiet = QuietHours.parse(self.settings.quiet_hours)
        names = broadcast.channel_names
        plans = {
            name: ChannelPlan(
                name,
                self.deps.spec(name).label,
                0,
                without_address=patient_rows.without_address(
                    s, notice.location_id, self.deps.spec(name)
                ),
            )
            for name in names
        }
        languages: dict[str, int] = defaultdict(int)
        fallbacks: dict[str, int] = defaultdict(int)
        for channel, state, reason, language, count in recipient_rows.decided(s, broadcast.id):
            plan = plans[channel]
            if state == DeliveryState.SKIPPED:
                why = reason or "skipped"
                plan.skipped[why] = plan.skipped.get(why, 0) + count
                continue
            plan.send += count
            written = default if facts.message else resolve_language(language, default, available)
            languages[written] += count
            if (language or default).lower() != written:
                fallbacks[f"{language} → {written}"] += count
        enabled = [n for n in names if self.deps.statuses[n].enabled and plans[n].send]
        estimate = self.previews.estimate(
            s,
            facts,
            notice.location_id,
            enabled,
            lambda spec: self.previews.queued(s, notice, broadcast.id, spec),
        )
        warnings = self.previews.estimate_warnings(estimate)
        preview = self.previews.compose(
            s, facts, notice.location_id, enabled, estimate=False, refuse=False
        )
        total_cost: float | None = 0.0
        segments = 0
        firsts: list[datetime] = []
        ends: list[datetime] = []
        for name in enabled:
            plan, spec = plans[name], self.deps.spec(name)
            plan.seconds = round(estimate.seconds.get(name, 0.0), 1)
            plan.units = estimate.units.get(name, 0)
            price = registry.price(spec, self.settings)
            plan.cost = None if price is None else round(plan.units * price, 4)
            if plan.cost is None or total_cost is None:
                total_cost = None
            else:
                total_cost += plan.cost
            if spec.counts_segments:
                segments += plan.units
                plan.longest = preview.longest.get(name)
            first = starts
            wait = None
            if spec.quiet_hours:
                urgent = spec.urgency(broadcast.urgent)
                wait = deferral(quiet, starts, tz, urgent, closure.starts, closure.ends)
            if wait is not None:
                until = wait.until.astimezone(tz)
                if wait.expired:
                    why = (
                        f"quiet hours until {until:%Y-%m-%d %H:%M} and the closure is over by then"
                    )
                    plan.skipped[why] = plan.skipped.get(why, 0) + plan.send
                    plan.send = 0
                    continue
                plan.deferred_until = until.isoformat()
                first = wait.until
            last = first + timedelta(seconds=plan.seconds)
            plan.first_send, plan.last_send = _local(first, tz), _local(last, tz)
            firsts.append(first)
            ends.append(last)
        threshold = self.settings.approval_threshold
        patients = recipient_rows.patients_to_send(s, broadcast.id)
        return Plan(
            notice_id=notice.id,
            broadcast_id=broadcast.id,
            status=broadcast.status,
            dry_run=dry_run,
            patients=patients,
            channels=list(plans.values()),
            languages=dict(languages),
            fallbacks=dict(fallbacks),
            currency=self.settings.price_currency,
            cost=None if total_cost is None else round(total_cost, 2),
            segments=segments,
            first_send=_local(min(firsts), tz) if firsts else None,
            last_send=_local(max(ends), tz) if ends else None,
            warnings=warnings,
            approval_threshold=threshold,
            needs_approval=threshold == 0 or patients > threshold,
        )


def _local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).isoformat(timespec="seconds")
