"""Is the service ready, and is there anything left to do?"""

from __future__ import annotations

from notifier.storage import conversations as conversation_rows
from notifier.storage import deliveries as delivery_rows
from notifier.storage import gauges as gauge_rows
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
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
        """Nothing scheduled and nothing (deliveries, answers) waiting to be sent or in a
        worker's hands."""
        with self.db.session() as s:
            scheduled = notice_rows.scheduled_broadcasts_exist(s)
            if scheduled or delivery_rows.has_open_deliveries(s):
                return False
            return not conversation_rows.answers_waiting(s)

    def unnamed_help(self) -> str | None:
        """Why HELP from a number no patient has would lack the program's name or a phone, with
        the fix; None when it has both, or the only location answers for itself."""
        with self.db.session() as s:
            count = len(location_rows.locations(s))
        missing = {
            variable: what
            for variable, what, value in (
                ("NOTIFIER_PROGRAM_NAME", "program name", self.settings.program_name),
                ("NOTIFIER_HELP_PHONE", "phone", self.settings.help_phone),
            )
            if not value
        }
        if count < 2 or not missing:
            return None
        return (
            f"HELP from a number no patient has gives no {' and no '.join(missing.values())}: "
            f"with {count} locations no one clinic answers, and carriers require HELP to name "
            f"the program and a contact. Set {' and '.join(missing)} (e.g. "
            "NOTIFIER_PROGRAM_NAME='COVA closure alerts' and NOTIFIER_HELP_PHONE to the help line)"
        )
