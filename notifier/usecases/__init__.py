"""Use cases: what clinic managers, ops and patients do, each in its own transaction.

The CLI, the web layer and the jobs call these and never open a database session themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from notifier.channels import ChannelStatus
from notifier.clock import Clock
from notifier.domain.channels import ChannelSpec
from notifier.rendering.messages import Messages
from notifier.settings import Settings
from notifier.storage.engine import Database


@dataclass(frozen=True)
class Deps:
    """What every use case needs; built once by ``bootstrap.build_app``."""

    db: Database
    clock: Clock
    settings: Settings
    messages: Messages
    channels: Mapping[str, ChannelSpec]  # every registered channel, in registry order
    statuses: Mapping[str, ChannelStatus]  # enabled, or why not

    def spec(self, name: str) -> ChannelSpec:
        return self.channels[name]

    def default_channels(self) -> tuple[str, ...]:
        """The channels of a notice that names none (SMS and email; a call only when asked)."""
        return tuple(name for name, spec in self.channels.items() if spec.by_default)


class UseCase:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.db = deps.db
        self.clock = deps.clock
        self.settings = deps.settings
