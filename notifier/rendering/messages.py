"""From a notice's stored facts to the exact message one patient (or a preview) gets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from notifier.domain.channels import MessageFormat
from notifier.domain.contacts import display_phone
from notifier.domain.notices import NoticeFacts, Template
from notifier.rendering.renderer import AppointmentInfo, MessageContext, Rendered, Renderer


def context(
    facts: NoticeFacts,
    language: str,
    first_name: str = "",
    appointments: Sequence[tuple[datetime, str]] = (),
) -> MessageContext:
    """The template variables for one message: the notice's words in ``language``, addressed to
    ``first_name``, naming ``appointments`` (start, provider) when the patient has some. The
    reason and a custom message are the ones written in ``language`` (never another
    language's text); a custom message not written in ``language`` goes in the location's
    language, with that language's words around it (never another language's footer)."""
    closure = facts.closure
    if facts.message and facts.message_in(language) is None:
        language = facts.clinic.default_language
    phone = facts.clinic.phone
    return MessageContext(
        language=language,
        location_name=facts.clinic.name,
        location_phone=display_phone(phone) if phone else None,
        location_phone_e164=phone,
        reason=facts.reason_in(language),
        reason_code=facts.reason_code.value if facts.reason_code else None,
        segments=closure.wording(),
        reopens=closure.reopening_to_say(),
        custom_message=facts.message_in(language),
        first_name=first_name,
        change=facts.change.value,
        changed=facts.changed,
        appointments=[
            AppointmentInfo(starts.astimezone(closure.tz), provider)
            for starts, provider in appointments
        ],
    )


def sample_appointment(facts: NoticeFacts) -> tuple[datetime, str]:
    """A stand-in appointment for previews: when the closure first shuts the doors."""
    wording = facts.closure.wording()
    return (wording[0].starts if wording else facts.closure.starts), "(provider)"


def resolve_language(wanted: str | None, fallback: str, available: Sequence[str]) -> str:
    """The patient's language when we have templates for it, else the location's default."""
    if wanted and wanted.lower() in available:
        return wanted.lower()
    return fallback


@dataclass(frozen=True)
class Sample:
    """One rendered message of a notice for one language and template, as previews show it."""

    language: str
    template: Template
    rendered: Rendered


class Messages:
    """Renders a notice's messages, remembering results: a broadcast has a handful of distinct
    contexts (language, first name, appointments), and rendering is most of the per-message
    work before a send (~0.6 ms)."""

    MAX_CACHED = 4096

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer
        self._cache: dict[tuple[MessageFormat, str, str], Rendered] = {}

    def languages(self) -> list[str]:
        return self.renderer.languages()

    def render(self, form: MessageFormat, ctx: MessageContext, template: Template) -> Rendered:
        key = (form, template.value, repr(ctx))
        found = self._cache.get(key)
        if found is None:
            found = self.renderer.render(form, ctx, template)
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[key] = found
        return found

    def samples(
        self,
        facts: NoticeFacts,
        form: MessageFormat,
        languages: Sequence[str],
        templates: Sequence[Template],
    ) -> list[Sample]:
        """Every template of the notice in every language, as the general (unaddressed)
        message; an appointment message names a sample appointment at the closure's start.
        A broken template raises here, before anything is stored or sent."""
        samples = []
        for language in languages:
            for template in templates:
                sample = [sample_appointment(facts)] if template is Template.APPOINTMENT else []
                ctx = context(facts, language, appointments=sample)
                samples.append(Sample(language, template, self.render(form, ctx, template)))
        return samples
