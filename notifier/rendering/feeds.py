"""A location's published notices in the public formats: JSON (and the banner's data),
schema.org JSON-LD, iCalendar (RFC 5545, with ``icalendar``), Atom (RFC 4287) and CAP 1.2
(both with ``xml.etree``). Every sentence is the texts' own, rendered from
``templates/public/`` with the same macros (``Renderer.render_public``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from icalendar import Calendar, Event

from notifier.domain.contacts import display_phone
from notifier.domain.notices import Template
from notifier.domain.public import (
    CalendarEvent,
    PublicFeed,
    PublicNotice,
    Version,
    calendar_events,
    cap_category,
    special_hours,
)
from notifier.rendering.messages import context
from notifier.rendering.renderer import Renderer

ATOM = "http://www.w3.org/2005/Atom"
CAP = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_TYPE = "application/cap+xml"

# The words around the notices' sentences, per language.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Closures",
        "headline": "{name}: closure notice",
        "cancelled": "{name}: open after all",
        "event": "Clinic closure",
        "none": "No closures are planned: we are open as usual.",
        "call": "Questions? Call us at {phone}.",
        "current": "Closed now",
        "upcoming": "Coming up",
        "dismiss": "Dismiss this notice",
        "more": "Details",
        "feeds": "Follow these closures",
        "calendar": "Calendar",
        "updated": "Updated",
    },
    "es": {
        "title": "Cierres",
        "headline": "{name}: aviso de cierre",
        "cancelled": "{name}: abrirá después de todo",
        "event": "Cierre de la clínica",
        "none": "No hay cierres previstos: abrimos como siempre.",
        "call": "¿Preguntas? Llámenos al {phone}.",
        "current": "Cerrado ahora",
        "upcoming": "Próximamente",
        "dismiss": "Cerrar este aviso",
        "more": "Detalles",
        "feeds": "Siga estos cierres",
        "calendar": "Calendario",
        "updated": "Actualizado",
    },
}


@dataclass(frozen=True)
class Links:
    """Where a location's public routes are, from the service's public base URL."""

    base: str  # e.g. https://notices.example.org (no trailing slash)
    slug: str

    @property
    def page(self) -> str:
        return f"{self.base}/public/{self.slug}"

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or "localhost"

    def of(self, name: str) -> str:
        """``banner.js``, ``closures.ics``, ``closures.atom`` under the page."""
        return f"{self.page}/{name}"

    @property
    def json(self) -> str:
        return f"{self.page}.json"

    def cap(self, notice: PublicNotice, version: Version) -> str:
        return f"{self.page}/cap/{cap_id(notice, version)}.xml"

    def stable_id(self, *parts: object) -> str:
        """A UUID that names one thing for good (a feed, a notice, a calendar event)."""
        name = "/".join(str(p) for p in (self.host, self.slug, *parts))
        return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def cap_id(notice: PublicNotice, version: Version) -> str:
    """The id of one CAP message in the routes: ``{notice}-{sequence}``."""
    return f"{notice.root_id}-{version.sequence}"


def parse_cap_id(text: str) -> tuple[int, int] | None:
    root, _, sequence = text.partition("-")
    if not (root.isdigit() and sequence.isdigit()):
        return None
    return int(root), int(sequence)


class Feeds:
    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    def languages(self) -> list[str]:
        return [lang for lang in self.renderer.languages() if lang in LABELS]

    def text(self, version: Version, language: str) -> str:
        """The version's sentences in ``language``, as the texts word them."""
        template = Template.OPEN if version.cancelled else Template.CLOSURE
        return self.renderer.render_public(context(version.facts, language), template)

    def headline(self, feed: PublicFeed, version: Version, language: str) -> str:
        key = "cancelled" if version.cancelled else "headline"
        return LABELS[language][key].format(name=feed.clinic.name)

    # --- JSON -------------------------------------------------------------------------

    def data(self, feed: PublicFeed, language: str, links: Links) -> dict[str, Any]:
        """The feed as JSON: what the banner reads, and integrations."""
        labels = LABELS[language]
        phone = feed.clinic.phone
        return {
            "location": {
                "slug": feed.slug,
                "name": feed.clinic.name,
                "phone": display_phone(phone) if phone else None,
                "timezone": feed.tz.key,
                "page": links.page,
            },
            "language": language,
            "updated": _iso(feed.changed, feed.tz),
            "labels": {"dismiss": labels["dismiss"], "more": labels["more"]},
            "closures": [self._closure(feed, n, language, links) for n in feed.shown()],
        }

    def _closure(
        self, feed: PublicFeed, notice: PublicNotice, language: str, links: Links
    ) -> dict[str, Any]:
        closure, latest = notice.closure, notice.latest
        reopens = closure.reopens()
        return {
            "id": notice.root_id,
            "sequence": latest.sequence,
            "state": notice.state(feed.now).value,
            "starts": _iso(closure.starts, feed.tz),
            "ends": _iso(closure.ends, feed.tz),
            "reopens": _iso(reopens, feed.tz) if reopens and not latest.cancelled else None,
            "intervals": [[_iso(a, feed.tz), _iso(b, feed.tz)] for a, b in closure.intervals],
            "text": self.text(latest, language),
            "updated": _iso(notice.updated, feed.tz),
            "cap": links.cap(notice, latest),
        }

    def json_ld(self, feed: PublicFeed, links: Links) -> dict[str, Any]:
        """schema.org: the clinic and its changed opening hours while closures are ahead or
        under way (a day closed all day has no ``opens``)."""
        hours = []
        for notice in feed.live():
            for day in special_hours(notice.closure):
                spec: dict[str, str] = {"@type": "OpeningHoursSpecification"}
                if day.opens is not None and day.closes is not None:
                    spec |= {"opens": f"{day.opens:%H:%M}", "closes": f"{day.closes:%H:%M}"}
                spec |= {"validFrom": day.day.isoformat(), "validThrough": day.day.isoformat()}
                hours.append(spec)
        data: dict[str, Any] = {
            "@context": "https://schema.org",
            "@type": "MedicalClinic",
            "name": feed.clinic.name,
            "url": links.page,
            "specialOpeningHoursSpecification": hours,
        }
        if feed.clinic.phone:
            data["telephone"] = feed.clinic.phone
        return data

    # --- iCalendar --------------------------------------------------------------------

    def ics(self, feed: PublicFeed, language: str, links: Links) -> bytes:
        """One VEVENT per closed run of days or part of a day, for every notice kept: a stable
        UID per notice interval, SEQUENCE its version's, CANCELLED when called off (and for a
        piece an update dropped)."""
        cal = Calendar()
        cal.add("prodid", "-//Notifier//Public closures//EN")
        cal.add("version", "2.0")
        cal.add("calscale", "GREGORIAN")
        cal.add("method", "PUBLISH")
        cal.add("x-wr-calname", f"{feed.clinic.name}: {LABELS[language]['title']}")
        cal.add("x-wr-timezone", feed.tz.key)
        days = [feed.now.date()]
        for notice in feed.notices:
            latest = notice.latest
            summary = self.headline(feed, latest, language)
            description = self.text(latest, language)
            for event, gone in _events_of(notice):
                days.append(event.first_day)
                cal.add_component(
                    _vevent(
                        event,
                        links.stable_id("notice", notice.root_id, event.key) + f"@{links.host}",
                        latest,
                        summary,
                        description,
                        cancelled=latest.cancelled or gone,
                        url=links.page,
                    )
                )
        # The zone's rules over the events' years only, not icalendar's default 1970-2038.
        cal.add_missing_timezones(date(min(days).year, 1, 1), date(max(days).year + 2, 1, 1))
        return bytes(cal.to_ical())

    # --- Atom -------------------------------------------------------------------------

    def atom(self, feed: PublicFeed, language: str, links: Links) -> bytes:
        labels = LABELS[language]
        root = ET.Element("feed", {"xmlns": ATOM, "xml:lang": language})
        _sub(root, "id", f"urn:uuid:{links.stable_id('feed')}")
        _sub(root, "title", f"{feed.clinic.name}: {labels['title']}")
        _sub(root, "updated", _iso(feed.changed, UTC))
        _sub(root, "link", rel="self", type="application/atom+xml", href=links.of("closures.atom"))
        _sub(root, "link", rel="alternate", type="text/html", href=links.page)
        author = _sub(root, "author")
        _sub(author, "name", feed.clinic.name)
        for notice in feed.shown():
            latest = notice.latest
            entry = _sub(root, "entry")
            _sub(entry, "id", f"urn:uuid:{links.stable_id('notice', notice.root_id)}")
            _sub(entry, "title", self.headline(feed, latest, language))
            _sub(entry, "published", _iso(notice.published, UTC))
            _sub(entry, "updated", _iso(notice.updated, UTC))
            if latest.cancelled:
                _sub(entry, "category", term="cancelled")
            _sub(entry, "link", rel="alternate", type="text/html", href=links.page)
            _sub(entry, "link", rel="alternate", type=CAP_TYPE, href=links.cap(notice, latest))
            _sub(entry, "summary", self.text(latest, language))
        return _xml(root)

    # --- CAP 1.2 ----------------------------------------------------------------------

    def cap(self, feed: PublicFeed, notice: PublicNotice, version: Version, links: Links) -> bytes:
        """The CAP alert of one version: Alert, Update (``references`` naming every earlier
        message) or Cancel; one ``info`` per language."""
        sender = f"{feed.slug}@{links.host}"
        alert = ET.Element("alert", {"xmlns": CAP})
        _sub(alert, "identifier", _cap_identifier(links, notice, version))
        _sub(alert, "sender", sender)
        _sub(alert, "sent", _iso(version.sent, feed.tz))
        _sub(alert, "status", "Actual")
        _sub(alert, "msgType", version.message_type.value)
        _sub(alert, "scope", "Public")
        earlier = notice.versions[: version.sequence]
        if earlier:
            _sub(
                alert,
                "references",
                " ".join(
                    f"{sender},{_cap_identifier(links, notice, v)},{_iso(v.sent, feed.tz)}"
                    for v in earlier
                ),
            )
        closure = version.facts.closure
        phone = feed.clinic.phone
        for language in self.languages():
            info = _sub(alert, "info")
            _sub(info, "language", language)
            _sub(
                info,
                "category",
                cap_category(version.facts.reason, version.facts.reason_code).value,
            )
            _sub(info, "event", LABELS[language]["event"])
            _sub(info, "urgency", "Past" if version.cancelled else "Expected")
            _sub(info, "severity", "Minor")
            _sub(info, "certainty", "Observed" if version.cancelled else "Likely")
            _sub(info, "onset", _iso(closure.starts, feed.tz))
            _sub(info, "expires", _iso(closure.ends, feed.tz))
            _sub(info, "senderName", feed.clinic.name)
            _sub(info, "headline", self.headline(feed, version, language))
            _sub(info, "description", self.text(version, language))
            _sub(info, "web", f"{links.page}?lang={language}")
            if phone:
                _sub(info, "contact", display_phone(phone))
            area = _sub(info, "area")
            _sub(area, "areaDesc", feed.clinic.name)
        return _xml(alert)


def _cap_identifier(links: Links, notice: PublicNotice, version: Version) -> str:
    return f"{links.host}.{links.slug}.{cap_id(notice, version)}"


def _events_of(notice: PublicNotice) -> list[tuple[CalendarEvent, bool]]:
    """The latest version's events, then (marked gone) those only earlier versions had."""
    current = calendar_events(notice.closure)
    keys = {event.key for event in current}
    gone: dict[str, CalendarEvent] = {}
    for version in notice.versions[:-1]:
        for event in calendar_events(version.facts.closure):
            if event.key not in keys:
                gone[event.key] = event
    return [(e, False) for e in current] + [(e, True) for e in gone.values()]


def _vevent(
    event: CalendarEvent,
    uid: str,
    version: Version,
    summary: str,
    description: str,
    cancelled: bool,
    url: str,
) -> Event:
    vevent = Event()
    vevent.add("uid", uid)
    vevent.add("dtstamp", version.sent.astimezone(UTC))
    vevent.add("last-modified", version.sent.astimezone(UTC))
    vevent.add("sequence", version.sequence)
    if event.all_day:
        vevent.add("dtstart", event.first_day)
        vevent.add("dtend", event.end_date)
    else:
        vevent.add("dtstart", event.starts)
        vevent.add("dtend", event.ends)
    vevent.add("summary", summary)
    vevent.add("description", description)
    vevent.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    vevent.add("transp", "TRANSPARENT")
    vevent.add("url", url)
    return vevent


def _iso(instant: datetime, tz: Any) -> str:
    """Seconds and an explicit offset (CAP's form; Atom and JSON read it too)."""
    return instant.astimezone(tz).replace(microsecond=0).isoformat()


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _xml(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
