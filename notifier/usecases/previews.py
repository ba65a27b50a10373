"""Previews: exactly what patients will get, per channel, language and template; how long the
broadcast takes; and the longest text any one patient gets. The same rendering validates a
notice when it is created (a broken template stops it there), so nothing is rendered twice."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from notifier.domain import estimates
from notifier.domain.channels import ChannelSpec, parse_channels
from notifier.domain.notices import (
    NoticeFacts,
    NoticeStatus,
    Template,
    channels_of,
    templates_for,
)
from notifier.rendering.messages import context, resolve_language
from notifier.storage import notices as notice_rows
from notifier.storage import patients as patient_rows
from notifier.storage.models import Appointment
from notifier.usecases import UseCase
from notifier.usecases.lookups import require_notice
from notifier.usecases.views import MessagePreview, Preview


class Previews(UseCase):
    def of_notice(self, notice_id: int, channel: str | None = None) -> Preview:
        """What a stored notice sends (or would have sent), as stored."""
        with self.db.session() as s:
            notice = require_notice(s, notice_id)
            wanted = (
                self.channel_names(channel)
                if channel
                else self.channel_names([b.channels for b in notice.broadcasts])
            )
            preview = self.compose(s, notice_rows.facts(notice), notice.location_id, wanted)
            if notice.status == NoticeStatus.CANCELLED:
                preview.warnings.append("this notice is cancelled: nothing more will be sent")
            return preview

    def channel_names(self, text: str | Sequence[str]) -> tuple[str, ...]:
        """Channels named by a person (``"sms,email"``), or those of stored broadcasts."""
        if isinstance(text, str):
            return parse_channels(text, self.deps.channels)
        return channels_of(text)

    def compose(
        self,
        s: Session,
        facts: NoticeFacts,
        location_id: int,
        channels: Sequence[str],
        estimate: bool = True,
    ) -> Preview:
        """Render every template of the notice in every language used at the location, for each
        channel; raises ``TemplateError`` for a broken template."""
        preview = Preview(notice_id=facts.id, channels={})
        languages = self.languages(s, facts, location_id)
        templates = templates_for(facts.change, facts.audience)
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
        if estimate:
            enabled = [n for n in channels if self.deps.statuses[n].enabled]
            preview.estimated_seconds = self.estimate(s, facts, location_id, enabled)
            preview.warnings.extend(self.estimate_warnings(preview.estimated_seconds))
        return preview

    def languages(self, s: Session, facts: NoticeFacts, location_id: int) -> list[str]:
        """The location's default language and every patient's (where templates exist)."""
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        return sorted(
            {default}
            | {
                resolve_language(language, default, available)
                for language in patient_rows.languages_at(s, location_id)
            }
        )

    def estimate(
        self,
        s: Session,
        facts: NoticeFacts,
        location_id: int,
        channels: Sequence[str],
        recipients: Callable[[ChannelSpec], dict[str, int]] | None = None,
    ) -> dict[str, float]:
        """Seconds each channel needs to send this notice, at the configured rate: text
        segments (per language, as rendered) or messages ÷ the rate. ``recipients`` counts a
        channel's recipients per language (default: everyone at the location who consented).
        Counts, never loads, patients."""
        available = self.deps.messages.languages()
        default = facts.clinic.default_language
        template = templates_for(facts.change, facts.audience)[0]
        count_recipients = recipients or (
            lambda spec: patient_rows.recipient_counts(s, location_id, spec)
        )
        result: dict[str, float] = {}
        for name in channels:
            spec = self.deps.spec(name)
            units = 0
            for language, count in count_recipients(spec).items():
                cost = 1
                if spec.counts_segments:
                    lang = resolve_language(language, default, available)
                    ctx = context(facts, lang)
                    cost = self.deps.messages.render(spec.format, ctx, template).cost
                units += count * cost
            result[name] = estimates.seconds(
                units, float(getattr(self.settings, spec.rate_setting))
            )
        return result

    def estimate_warnings(self, estimate: dict[str, float]) -> list[str]:
        return estimates.too_long(
            estimate,
            self.settings.sms_queue_window_seconds,
            {name: self.deps.spec(name).rate_variable for name in estimate},
        )

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
