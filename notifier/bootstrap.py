"""Composition root: the one place that builds the app's parts from settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from notifier.channels import Channel, build_channels
from notifier.clock import Clock, ShiftedClock, SystemClock
from notifier.db import Database
from notifier.dispatcher import Dispatcher
from notifier.rendering import Renderer
from notifier.service import NotifierService
from notifier.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class App:
    settings: Settings
    db: Database
    clock: Clock
    renderer: Renderer
    service: NotifierService

    def dispatcher(self, channels: dict[str, Channel] | None = None) -> Dispatcher:
        return Dispatcher(
            self.db,
            channels if channels is not None else build_channels(self.settings),
            self.renderer,
            self.clock,
            self.settings,
        )

    def close(self) -> None:
        self.db.dispose()


def build_app(settings: Settings, clock: Clock | None = None, migrate: bool = True) -> App:
    if clock is None:
        clock = ShiftedClock(settings.now) if settings.now else SystemClock()
    db = Database(settings.database_url, pool_size=settings.dispatch_concurrency + 4)
    if migrate:
        db.upgrade()
    renderer = Renderer(settings.templates_dir)
    service = NotifierService(db, renderer, clock, settings)
    return App(settings, db, clock, renderer, service)
