"""Reading notices: one, all (of a location), every version of one, and the appointments a
closure affects; each as staff should read it now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.closures import intervals_from_json, zone
from notifier.storage import notices as notice_rows
from notifier.storage.models import Notice
from notifier.usecases import UseCase
from notifier.usecases.audit import record
from notifier.usecases.lookups import location_id_of, require_notice, require_patient_data
from notifier.usecases.views import AffectedAppointment, NoticeView, notice_view


class NoticeQueries(UseCase):
    def get(self, actor: Actor, notice_id: int) -> NoticeView:
        with self.db.session() as s:
            return self._view(s, require_notice(s, notice_id, actor))

    def all(self, actor: Actor, location_slug: str | None = None) -> list[NoticeView]:
        """Every notice (of a location) the actor may see, as stored: nothing is re-checked,
        so one notice whose location has changed since never stops the list."""
        with self.db.session() as s:
            location_id = location_id_of(s, location_slug, actor)
            return self._views(s, notice_rows.notices(s, location_id, actor.locations))

    def chain(self, actor: Actor, notice_id: int) -> list[NoticeView]:
        """Every version of a notice, oldest first."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            return self._views(s, notice_rows.chain(s, notice.root_id or notice.id))

    def _views(self, s: Session, notices: Sequence[Notice]) -> list[NoticeView]:
        """Notices as staff should read them now (what replaced each, in one query)."""
        now = self.clock.now()
        hold = timedelta(seconds=self.settings.send_hold_seconds)
        followed = notice_rows.successors(s, [n.id for n in notices])
        return [notice_view(n, now, followed.get(n.id), hold) for n in notices]

    def _view(self, s: Session, notice: Notice) -> NoticeView:
        return self._views(s, [notice])[0]

    def affected(self, actor: Actor, notice_id: int) -> list[AffectedAppointment]:
        """Appointments inside the notice's closed intervals, for the front desk to reschedule
        (a bulk read of patients' data: audited; only for an actor who ``sees_patients``)."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            require_patient_data(actor)
            tz = zone(notice.timezone)
            rows = notice_rows.affected_appointments(
                s, notice.location_id, intervals_from_json(notice.intervals)
            )
            target = f"notice:{notice_id}"
            record(s, actor, "affected_export", self.clock.now(), target, len(rows))
            return [
                AffectedAppointment(
                    appointment=a.external_id,
                    patient=a.patient.external_id,
                    first_name=a.patient.first_name,
                    last_name=a.patient.last_name,
                    starts=a.starts_at.astimezone(tz).isoformat(),
                    ends=a.ends_at.astimezone(tz).isoformat(),
                    provider=a.provider,
                    status=a.status,
                )
                for a in rows
            ]
