"""Composition root: the one place that builds the app's parts from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from notifier import channels as registry
from notifier.channels import Channel
from notifier.clock import Clock, ShiftedClock, SystemClock
from notifier.delivery.answers import AnswerSender
from notifier.delivery.dispatcher import Dispatcher, new_worker_id
from notifier.delivery.fanout import Fanout
from notifier.delivery.intake import Intake
from notifier.delivery.reconcile import Reconciler
from notifier.delivery.workers import Workers
from notifier.rendering.feeds import Feeds
from notifier.rendering.messages import Messages
from notifier.rendering.renderer import Renderer
from notifier.settings import Settings
from notifier.storage.engine import Database
from notifier.usecases import Deps
from notifier.usecases.accounts import Accounts
from notifier.usecases.audit import Audit
from notifier.usecases.calls import Calls
from notifier.usecases.consent import Consent
from notifier.usecases.deliveries import Deliveries
from notifier.usecases.health import Health
from notifier.usecases.locations import Locations
from notifier.usecases.notices import Notices
from notifier.usecases.patients import Patients
from notifier.usecases.plans import Plans
from notifier.usecases.previews import Previews
from notifier.usecases.public import PublicNotices
from notifier.usecases.replies import Replies
from notifier.usecases.retention import Retention
from notifier.usecases.sessions import Sessions

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    db: Database
    clock: Clock
    renderer: Renderer
    deps: Deps
    locations: Locations
    notices: Notices
    previews: Previews
    plans: Plans
    deliveries: Deliveries
    patients: Patients
    consent: Consent
    replies: Replies  # patients' texts that are not keywords: the inbox, answers, auto-reply
    calls: Calls
    accounts: Accounts
    audit: Audit
    retention: Retention
    sessions: Sessions
    health: Health
    fanout: Fanout
    public: PublicNotices  # what anyone may read: the public page and feeds
    feeds: Feeds  # ... in their formats

    def dispatcher(
        self, channels: Mapping[str, Channel] | None = None, worker_id: str | None = None
    ) -> Dispatcher:
        """The sender, through ``channels`` (default: every enabled channel's real client)."""
        built = (
            channels if channels is not None else registry.build_channels(self.settings, self.clock)
        )
        return Dispatcher(self.deps, built, worker_id)

    def intake(self, stored: Callable[[], None] | None = None) -> Intake:
        """The group-committed store of providers' reports (the status-callback handler's);
        ``stored`` is called after each commit."""
        return Intake(self.deliveries, stored)

    def reconciler(self, channels: Mapping[str, Channel] | None = None) -> Reconciler:
        """Asks the providers about deliveries left "sent" (default: every enabled channel)."""
        built = (
            channels if channels is not None else registry.build_channels(self.settings, self.clock)
        )
        return Reconciler(self.deliveries, built)

    def workers(
        self, worker_id: str, role: str, held: Callable[[], Sequence[int]] = list
    ) -> Workers:
        """Heartbeats for the process ``worker_id``, extending the leases of ``held``."""
        return Workers(self.db, self.clock, self.settings, worker_id, role, held)

    def answers(
        self, channels: Mapping[str, Channel] | None = None, worker_id: str | None = None
    ) -> AnswerSender:
        """The sender of queued answers and auto-replies, through ``channels`` (default: every
        enabled channel's real client, closed by its ``close``)."""
        if channels is not None:
            return AnswerSender(self.deps, channels, worker_id or new_worker_id())
        built = registry.build_channels(self.settings, self.clock)
        return AnswerSender(self.deps, built, worker_id or new_worker_id(), own_channels=True)

    def close(self) -> None:
        self.db.dispose()


def build_app(settings: Settings, clock: Clock | None = None, migrate: bool = True) -> App:
    """The app; ``migrate`` creates the database if need be and brings its schema to the head,
    otherwise a missing, unreachable or unmigrated database is a one-line ``ConfigurationError``."""
    if clock is None:
        clock = ShiftedClock(settings.now) if settings.now else SystemClock()
    statuses = registry.statuses(settings)  # a half-configured channel fails now, not later
    pool_size = settings.dispatch_concurrency + 4
    db = Database(settings.database_url, pool_size=pool_size, create=migrate)
    try:
        db.upgrade() if migrate else db.require_current()
    except BaseException:
        db.dispose()
        raise
    renderer = Renderer(settings.templates_dir)
    deps = Deps(db, clock, settings, Messages(renderer), registry.specs(), statuses)
    previews = Previews(deps)
    plans = Plans(deps, previews)
    accounts = Accounts(deps)
    return App(
        settings=settings,
        db=db,
        clock=clock,
        renderer=renderer,
        deps=deps,
        locations=Locations(deps),
        notices=Notices(deps, previews, plans),
        previews=previews,
        plans=plans,
        deliveries=Deliveries(deps),
        patients=Patients(deps),
        consent=Consent(deps),
        replies=Replies(deps),
        calls=Calls(deps),
        accounts=accounts,
        audit=Audit(deps),
        retention=Retention(deps),
        sessions=Sessions(deps, accounts),
        health=Health(deps),
        fanout=Fanout(deps, previews),
        public=PublicNotices(deps),
        feeds=Feeds(renderer),
    )
