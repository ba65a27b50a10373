"""Locations: add or edit a clinic, and say which queued notices its new hours would word
differently (they keep their stored words; an update re-words them)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.channels import MessageFormat
from notifier.domain.closures import BusinessHours, Closure, zone
from notifier.domain.contacts import normalize_phone
from notifier.domain.notices import NoticeFacts, template_for
from notifier.errors import ForbiddenError, NotFoundError, ValidationError
from notifier.rendering.messages import context
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
from notifier.storage.models import Location
from notifier.usecases import UseCase
from notifier.usecases.audit import record
from notifier.usecases.lookups import require_location, require_manager
from notifier.usecases.views import LocationView, local_iso, location_view

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reworded:
    """A queued notice whose words the change touches: the location's name, phone or language
    change them at once; a new zone or new hours only if the notice is updated."""

    notice_id: int
    starts: str  # local ISO, as stored
    ends: str
    before: str  # the general text before the change
    stored: str  # the text as it will now go out (stored zone and hours, current name...)
    with_new_settings: str | None  # the text if updated to the new hours; None: refused
    problem: str | None  # why the notice would not be accepted under the new settings

    @property
    def advice(self) -> str:
        if self.with_new_settings == self.stored:
            return (
                f"notice {self.notice_id} goes out with the location's new name, phone or "
                "language: nothing to do"
            )
        keep = f"notice {self.notice_id} keeps the closure words it was created with"
        if self.problem:
            return (
                f"{keep}; under the new hours it would be refused ({self.problem}): cancel it "
                f"(`notifier notice cancel {self.notice_id}`) or leave it as it is"
            )
        return (
            f"{keep}; to send the new wording instead, update it "
            f"(`notifier notice update {self.notice_id}`)"
        )


@dataclass(frozen=True)
class LocationSaved:
    location: LocationView
    created: bool
    reworded: list[Reworded] = field(default_factory=list)


class Locations(UseCase):
    def save(
        self,
        actor: Actor,
        slug: str,
        name: str,
        timezone: str,
        business_hours: str,
        phone: str | None = None,
        default_language: str = "en",
    ) -> LocationSaved:
        """Add a location, or change it if the slug exists. Queued notices are never touched:
        those whose words the change would alter are listed, with what to do. Managers change
        their own locations; only an admin of every location adds one."""
        require_manager(actor)
        slug = slug.strip().lower()
        if not slug or not slug.replace("-", "").isalnum():
            raise ValidationError(
                f"location slug {slug!r} must be letters, digits and dashes", "slug"
            )
        if not name.strip():
            raise ValidationError("location name is empty", "name")
        tz = zone(timezone, "timezone")
        hours = BusinessHours.parse(business_hours)
        phone_e164 = normalize_phone(phone, self.settings.default_region) if phone else None
        languages = self.deps.messages.languages()
        if default_language not in languages:
            raise ValidationError(
                f"default language {default_language!r} has no templates "
                f"(available: {', '.join(languages)})",
                "language",
            )
        now = self.clock.now()
        with self.db.session() as s:
            existing = location_rows.location_by_slug(s, slug)
            if existing is not None and not actor.sees(existing.id):
                raise NotFoundError(f"no location {slug!r}", "location")
            if existing is None and not (actor.is_admin and actor.every_location):
                raise ForbiddenError("only an admin adds locations")
            created = location_rows.add_location(
                s, slug, name.strip(), tz.key, hours.to_json(), now
            )
            location = location_rows.location_by_slug(s, slug)
            assert location is not None  # added now, or before (two saves at once: one adds)
            before = {} if created else self._texts(s, location, now)
            location.name = name.strip()
            location.timezone = tz.key
            location.business_hours = hours.to_json()
            location.phone = phone_e164
            location.default_language = default_language
            s.flush()
            reworded = self._reworded(s, location, tz, hours, now, before)
            action = "location_create" if created else "location_update"
            record(s, actor, action, now, f"location:{location.id}")
            if reworded:
                log.warning(
                    "location changed: queued notices keep their words",
                    extra={
                        "action": "location_changed",
                        "location": slug,
                        "notices": [r.notice_id for r in reworded],
                    },
                )
            return LocationSaved(location_view(location), created, reworded)

    def set_public_feeds(self, actor: Actor, slug: str, on: bool) -> LocationView:
        """Turn the location's public page, banner and feeds on or off (off: they answer 404)."""
        require_manager(actor)
        with self.db.session() as s:
            location = require_location(s, slug, actor)
            location.public_feeds = on
            s.flush()
            record(s, actor, "location_feeds", self.clock.now(), f"location:{location.id}")
            log.info(
                "public feeds switched",
                extra={"action": "public_feeds", "location": location.slug, "on": on},
            )
            return location_view(location)

    def all(self, actor: Actor) -> list[LocationView]:
        """The locations the actor may see."""
        with self.db.session() as s:
            return [location_view(loc) for loc in location_rows.locations(s) if actor.sees(loc.id)]

    def _texts(self, s: Session, location: Location, now: datetime) -> dict[int, str]:
        return {
            notice.id: self._text(notice_rows.facts(notice))
            for notice in notice_rows.pending_at(s, location.id, now)
        }

    def _reworded(
        self,
        s: Session,
        location: Location,
        tz: ZoneInfo,
        hours: BusinessHours,
        now: datetime,
        before: dict[int, str],
    ) -> list[Reworded]:
        result = []
        for notice in notice_rows.pending_at(s, location.id, now):
            stored = notice_rows.facts(notice)
            text = self._text(stored)
            new_text: str | None
            problem: str | None
            try:
                closure = Closure.checked(stored.closure.intervals, tz, hours)
            except ValidationError as exc:
                new_text, problem = None, str(exc)
            else:
                new_text, problem = self._text(replace(stored, closure=closure)), None
            if new_text != text or before.get(notice.id, text) != text:
                result.append(
                    Reworded(
                        notice_id=notice.id,
                        starts=local_iso(notice.starts_at, notice.timezone) or "",
                        ends=local_iso(notice.ends_at, notice.timezone) or "",
                        before=before.get(notice.id, text),
                        stored=text,
                        with_new_settings=new_text,
                        problem=problem,
                    )
                )
        return result

    def _text(self, facts: NoticeFacts) -> str:
        """The general short text in the location's default language: the words people read."""
        ctx = context(facts, facts.clinic.default_language)
        template = template_for(facts.change, names_appointments=False)
        return self.deps.messages.render(MessageFormat.TEXT, ctx, template).text
