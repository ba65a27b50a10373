"""Is the service ready, and is there anything left to do?"""

from __future__ import annotations

from notifier.storage import gauges as gauge_rows
from notifier.storage import notices as notice_rows
from notifier.storage import queue
from notifier.storage.gauges import Gauges
from notifier.usecases import UseCase


class Health(UseCase):
    def ready(self) -> None:
        """Raise unless the database answers."""
        self.db.ping()

    def gauges(self) -> Gauges:
        """The fleet-wide numbers ``/metrics`` reads from the database at each scrape."""
        with self.db.session() as s:
            return gauge_rows.read(s, self.clock.now())

    def idle(self) -> bool:
        """Nothing scheduled and nothing waiting to be sent or in a worker's hands."""
        with self.db.session() as s:
            return not notice_rows.scheduled_broadcasts_exist(s) and not queue.has_open_deliveries(
                s
            )
