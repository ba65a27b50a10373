"""Previews: exactly what patients will get, per channel, language and template; how long the
broadcast takes; and the longest text any one patient gets. The same rendering validates a
notice when it is created (a broken template stops it there), so nothing is rendered twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from notifier import channels as registry
from notifier.domain import estimates
from notifier.domain.actors import Actor
from notifier.domain.channels import ChannelSpec, parse_channels
from notifier.domain.contacts import mask_text
from notifier.domain.notices import (
    Audience,
    NoticeFacts,
    NoticeStatus,
    ReasonCode,
    Template,
    channels_of,
    template_for,
    templates_for,
)
from notifier.domain.segments import count_segments
from notifier.domain.senders import Sender, share_out
from notifier.domain.wording import plural
from notifier.errors import TemplateError, ValidationError
from notifier.rendering.messages import context, resolve_language
from notifier.settings import ENV_PREFIX
from notifier.storage import notices as notice_rows
from notifier.storage import patients as patient_rows
from notifier.storage import recipients as recipient_rows
from notifier.storage.models import Appointment, Notice
from notifier.usecases import UseCase
from notifier.usecases.lookups import require_notice
from notifier.usecases.views import MessagePreview, Preview


@dataclass(frozen=True)
class Recipients:
    """Who a channel's messages go to, as far as their length goes."""

    # (language, first name, how many addresses) getting the general message
    names: list[tuple[str, str, int]]
    # patients whose message names their own appointments: (language, first name, appointments)
    own: list[tuple[str, str, list[tuple[datetime, str]]]] = field(default_factory=list)
    names_include_own: bool = False  # ``names`` counts those patients too
    # the addresses, loaded only to share a broadcast out among a pool of senders
    addresses: Callable[[], Sequence[str]] | None = None


@dataclass
class Estimate:
    """Seconds per channel at the configured rates, and the texts that could not be rendered
    for some patients (those deliveries will fail with the reason; the rest go out)."""

    seconds: dict[str, float] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)  # segments, or messages
    # channel → sender → seconds, for a channel sending from a pool (each at its own rate)
    senders: dict[str, dict[str, float]] = field(default_factory=dict)
    unrenderable: dict[str, str] = field(default_factory=dict)  # channel → the first error


class Previews(UseCase):
    def of_notice(self, actor: Actor, notice_id: int, channel: str | None = None) -> Preview:
        """What a stored notice sends (or would have sent), as stored."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id, actor)
            wanted = (
                self.chosen_channels((channel,))
                if channel
                else channels_of([b.channel_names for b in notice.broadcasts])
            )
            preview = self.compose(
                s, notice_rows.facts(notice), notice.location_id, wanted, refuse=False
            )
            if notice.status == NoticeStatus.CANCELLED:
                preview.warnings.append("this notice is cancelled: nothing more will be sent")
            return preview

    def chosen_channels(self, names: Sequence[str]) -> tuple[str, ...]:
        """Channels named by a person, each checked; none named means the default channels
        (every channel a notice goes out on unless asked: not calls)."""
        return parse_channels(names or self.deps.default_channels(), self.deps.channels)

    def compose(
        self,
        s: Session,
        facts: NoticeFacts,
        location_id: int,
        channels: Sequence[str],
        estimate: bool = True,
        refuse: bool = True,
    ) -> Preview:
        """Render every template of the notice in every language used at the location, for each
        channel; raises ``TemplateError`` for a broken template and (with ``refuse``, for a
        notice not stored yet) ``ValidationError`` for a text some patient would get that is
        longer than its channel allows."""
        preview = Preview(notice_id=facts.id, channels={})
        languages = self.languages(s, facts, location_id)
        templates = templates_for(facts.change, facts.audience)
        preview.warnings.extend(self.language_warnings(s, facts, location_id))
        for name in channels:
            spec = self.deps.spec(name)
            status = self.deps.statuses[name]
            preview.channels[name] = "enabled" if status.enabled else status.reason
            if not status.enabled:
                preview.warnings.append(status.reason)
            preview.messages[name] = [
                MessagePreview.of(name, sample.language, sample.template, sample.rendered)
                for sample in self.deps.messages.samples(facts, spec.format, languages, templates)
            ]
            if spec.counts_segments:
                longest = self._longest(s, facts, location_id, spec, templates)
                if longest is not None:
                    preview.longest[name] = longest
            too_long = oversize(spec, preview.messages[name], preview.longest.get(name))
            if too_long and refuse:
                raise ValidationError(too_long, "message")
            if too_long:
                preview.warnings.append(too_long)
        if estimate:
            enabled = [n for n in channels if self.deps.statuses[n].enabled]
            expected = self.estimate(s, facts, location_id, enabled)
            preview.estimated_seconds = expected.seconds
            preview.warnings.extend(self.estimate_warnings(expected))
        return preview

    def languages(self, s: Session, facts: NoticeFacts, location_id: int) -> list[str]:
        """The location's default language and every patient's (where templates exist); a
        custom message goes in the languages it is written in."""
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        if facts.message:
            return sorted({default, *facts.messages})
        return sorted(
            {default}
            | {
                resolve_language(language, default, available)
                for language in patient_rows.languages_at(s, location_id)
            }
        )

    def language_warnings(self, s: Session, facts: NoticeFacts, location_id: int) -> list[str]:
        """Patients who will not get their own language: no templates for it, or a custom
        message (written in the location's language)."""
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        warnings = []
        for language, count in patient_rows.language_counts(s, location_id).items():
            if language == default:
                continue
            patients = plural(count, "patient")
            if facts.message and facts.message_in(language) is None:
                warnings.append(
                    f"{patients} with language {language!r} get the custom message in "
                    f"{default!r}, the location's language"
                )
            elif resolve_language(language, default, available) != language:
                warnings.append(
                    f"{patients} with language {language!r} get {default!r}: there are no "
                    f"{language!r} templates"
                )
            elif not facts.message and facts.reason and not facts.reason_in(language):
                words = facts.reason_code and facts.reason_code is not ReasonCode.OTHER
                never = f"the {default!r} text never goes into their messages"
                if words:
                    warnings.append(
                        f"{patients} with language {language!r} get the reason category "
                        f"without its free text (add --reason-{language}; {never})"
                    )
                else:
                    warnings.append(
                        f"{patients} with language {language!r} get no reason: it is written "
                        f"only in {default!r} (add --reason-{language} or a --reason-code; "
                        f"{never})"
                    )
        return warnings

    def estimate(
        self,
        s: Session,
        facts: NoticeFacts,
        location_id: int,
        channels: Sequence[str],
        recipients: Callable[[ChannelSpec], Recipients] | None = None,
    ) -> Estimate:
        """Seconds each channel needs to send this notice at the configured rate: the segments
        of each patient's own text (name and appointments change its length; names of one
        length and alphabet cost the same, so one of each is rendered) or messages ÷ the rate.
        ``recipients`` says who gets what (default: the location's audience as it is now)."""
        count_recipients = recipients or (lambda spec: self._audience(s, facts, location_id, spec))
        result = Estimate()
        for name in channels:
            spec = self.deps.spec(name)
            who = count_recipients(spec)
            units = self._units(facts, spec, who, result)
            result.units[name] = units
            result.seconds[name] = estimates.seconds(units, registry.rate(spec, self.settings))
            pool = registry.senders(spec, self.settings)
            if pool and units and who.addresses is not None:
                result.senders[name] = by_sender(units, share_out(who.addresses(), pool))
                result.seconds[name] = max(result.senders[name].values(), default=0.0)
        return result

    def queued(
        self, s: Session, notice: Notice, broadcast_id: int, spec: ChannelSpec
    ) -> Recipients:
        """Who a fan-out queued, with each appointment-naming patient's own appointments."""
        names, patients = recipient_rows.queued_names(s, broadcast_id, spec.name)
        appointments: dict[int, list[tuple[datetime, str]]] = {p.id: [] for p in patients}
        if patients:
            for a in notice_rows.affected_appointments(
                s,
                notice.location_id,
                notice_rows.closure_of(notice).intervals,
                patient_ids=list(appointments),
            ):
                appointments[a.patient_id].append((a.starts_at, a.provider))
        own = [(p.language, p.first_name, appointments[p.id]) for p in patients]
        addresses = partial(recipient_rows.queued_addresses, s, broadcast_id, spec.name)
        return Recipients(names, own, addresses=addresses)

    def _audience(
        self, s: Session, facts: NoticeFacts, location_id: int, spec: ChannelSpec
    ) -> Recipients:
        """Who the notice's first broadcast would reach now, for the estimate."""
        names = patient_rows.recipient_names(s, location_id, spec)
        addresses = partial(patient_rows.recipient_addresses, s, location_id, spec)
        own: list[tuple[str, str, list[tuple[datetime, str]]]] = []
        if Template.APPOINTMENT in templates_for(facts.change, facts.audience):
            for appointments in self._affected_by_patient(s, facts, location_id).values():
                patient = appointments[0].patient
                if getattr(patient, spec.consent_field) and getattr(patient, spec.address.value):
                    times = [(a.starts_at, a.provider) for a in appointments]
                    own.append((patient.language, patient.first_name, times))
        if facts.audience is Audience.AFFECTED:
            return Recipients([], own, addresses=addresses)
        return Recipients(names, own, names_include_own=True, addresses=addresses)

    def _units(
        self, facts: NoticeFacts, spec: ChannelSpec, recipients: Recipients, result: Estimate
    ) -> int:
        """Rate units (segments, or messages) to send to ``recipients``. A text that cannot
        be rendered for a patient costs nothing (it will fail) and is noted in ``result``."""
        if not spec.counts_segments:
            own = 0 if recipients.names_include_own else len(recipients.own)
            return sum(count for _, _, count in recipients.names) + own
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        general = templates_for(facts.change, facts.audience)[0]
        if general is Template.APPOINTMENT:
            general = Template.CLOSURE
        costs: dict[tuple[str, int, str], int] = {}

        def cost(language: str, name: str, appointments: list[tuple[datetime, str]]) -> int:
            lang = resolve_language(language, default, available)
            template = general
            if appointments:
                template = template_for(facts.change, names_appointments=True)
            ctx = context(facts, lang, name, appointments)
            try:
                return self.deps.messages.render(spec.format, ctx, template).cost
            except TemplateError as error:
                result.unrenderable.setdefault(spec.name, mask_text(str(error)))
                return 0

        def general_cost(language: str, name: str) -> int:
            info = count_segments(name)
            key = (language, info.units, info.encoding)
            if key not in costs:
                costs[key] = cost(language, name, [])
            return costs[key]

        units = sum(count * general_cost(lang, name) for lang, name, count in recipients.names)
        for language, name, appointments in recipients.own:
            units += cost(language, name, appointments)
            if recipients.names_include_own:
                units -= general_cost(language, name)
        return units

    def estimate_warnings(self, estimate: Estimate) -> list[str]:
        warnings = [
            f"the {channel} message cannot be rendered for some patients ({why}): their "
            "deliveries will fail with that reason; fix the template, then "
            "`notifier deliveries retry`"
            for channel, why in estimate.unrenderable.items()
        ]
        window = self.settings.sms_queue_window_seconds
        for channel, seconds in estimate.senders.items():
            variable = self._rate_variable(self.deps.spec(channel))
            warnings += estimates.too_long_per_sender(channel, seconds, window, variable)
        return warnings + estimates.too_long(
            {c: s for c, s in estimate.seconds.items() if c not in estimate.senders},
            window,
            {name: self._rate_variable(self.deps.spec(name)) for name in estimate.seconds},
        )

    def _rate_variable(self, spec: ChannelSpec) -> str:
        """Where the rate a warning speaks of is set: the pool of senders, if there is one."""
        if registry.senders(spec, self.settings) and spec.senders_setting:
            return f"{ENV_PREFIX}{spec.senders_setting.upper()}"
        return spec.rate_variable

    def _longest(
        self,
        s: Session,
        facts: NoticeFacts,
        location_id: int,
        spec: ChannelSpec,
        templates: Sequence[Template],
    ) -> MessagePreview | None:
        """The text with the most segments any one patient will get: names and appointment
        times change the length. Renders the longest first name per language, and each
        affected patient's own appointments (never every patient)."""
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        render = self.deps.messages.render
        longest: MessagePreview | None = None
        template = templates[0]
        for language, first_name in patient_rows.longest_first_names(s, location_id, spec):
            lang = resolve_language(language, default, available)
            ctx = context(facts, lang, first_name)
            candidate = MessagePreview.of(
                spec.name, lang, template, render(spec.format, ctx, template)
            )
            longest = candidate if candidate.longer_than(longest) else longest
        if Template.APPOINTMENT in templates:
            for appointments in self._affected_by_patient(s, facts, location_id).values():
                patient = appointments[0].patient
                lang = resolve_language(patient.language, default, available)
                ctx = context(
                    facts,
                    lang,
                    patient.first_name,
                    [(a.starts_at, a.provider) for a in appointments],
                )
                rendered = render(spec.format, ctx, Template.APPOINTMENT)
                candidate = MessagePreview.of(spec.name, lang, Template.APPOINTMENT, rendered)
                longest = candidate if candidate.longer_than(longest) else longest
        return longest

    def _affected_by_patient(
        self, s: Session, facts: NoticeFacts, location_id: int
    ) -> dict[int, list[Appointment]]:
        by_patient: dict[int, list[Appointment]] = {}
        rows = notice_rows.affected_appointments(s, location_id, facts.closure.intervals)
        for appointment in rows:
            by_patient.setdefault(appointment.patient_id, []).append(appointment)
        return by_patient


def oversize(
    spec: ChannelSpec, samples: Sequence[MessagePreview], longest: MessagePreview | None
) -> str | None:
    """Why a channel's message is too long for its provider, or None: the longest text any one
    patient gets (names and appointment times change its length) against the channel's limit."""
    limit = spec.max_characters
    if limit is None:
        return None
    worst = max([*samples, *([longest] if longest else [])], key=lambda m: m.characters)
    if worst.characters <= limit:
        return None
    return (
        f"the {spec.label} message is {worst.characters:,} characters for some patients "
        f"(language {worst.language!r}); {spec.label} allows at most {limit:,}: shorten the "
        "message or the reason"
    )


def by_sender(units: int, shares: dict[Sender, int]) -> dict[str, float]:
    """Seconds each sender of a pool needs for its share of ``units`` at its own rate (the
    share of units follows its share of addresses)."""
    total = sum(shares.values()) or 1
    return {
        sender.address: estimates.seconds(units * count / total, sender.rate)
        for sender, count in shares.items()
    }
