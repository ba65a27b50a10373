"""Reconciliation: deliveries left "sent" because their final status callback never came (lost,
or refused while we were down) are asked of the provider, and its answers go through the
receipts intake like any callback (one home for reports: deduplicated, monotonic).

Each pass asks at most ``BATCH`` messages per channel per round until none is stale, naming the
days they were sent on, so a provider that lists by day answers many in one request; a delivery
is marked asked before the provider is called, so several processes never ask about the same
one, and one the provider could not answer for is asked again a reconcile period later.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from notifier.channels import Channel
from notifier.channels.base import Asked, ChannelError
from notifier.usecases.deliveries import Deliveries

log = logging.getLogger(__name__)


class Reconciler:
    BATCH = 1000

    def __init__(self, deliveries: Deliveries, channels: Mapping[str, Channel]) -> None:
        self.deliveries = deliveries
        self.channels = channels

    def run(self) -> int:
        """One pass over every channel whose provider can be asked; how many reports it took
        in (they are applied with the others)."""
        if not self.deliveries.settings.receipts_reconcile_after_minutes:
            return 0
        taken = 0
        for name, channel in self.channels.items():
            if isinstance(channel, Asked):
                taken += self._channel(name, channel)
        return taken

    def _channel(self, name: str, channel: Asked) -> int:
        taken = 0
        while stale := self.deliveries.stale_sent(name, self.BATCH):
            provider_ids = [provider_id for provider_id, _ in stale]
            days = (stale[0][1].date(), stale[-1][1].date())  # oldest first
            try:
                reports = channel.reports(provider_ids, days)
            except ChannelError as error:
                log.warning(
                    "could not ask the provider about deliveries left sent: %s",
                    error.message,
                    extra={"action": "reconcile_failed", "channel": name},
                )
                break
            taken += self.deliveries.take_in(reports, source="reconcile")
            log.info(
                "asked the provider about deliveries left sent",
                extra={
                    "action": "reconcile_asked",
                    "channel": name,
                    "asked": len(provider_ids),
                    "answered": len(reports),
                },
            )
        return taken
