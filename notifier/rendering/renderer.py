"""Turn a closure into the exact words patients get: one sandboxed Jinja2 environment.

Templates live in ``templates/<format>/<name>.<language>.<part>.j2`` (format: ``sms`` for short
texts, ``email``). Undefined variables are errors and HTML is escaped, so a broken template
fails at preview, never silently at send time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_time
from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
    pass_context,
)
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from notifier.domain.channels import MessageFormat
from notifier.domain.closures import ClosureSegment
from notifier.domain.notices import NoticeChange, Template
from notifier.domain.segments import SegmentInfo, count_segments, normalize_sms_text
from notifier.errors import TemplateError
from notifier.rendering.spoken import spoken_date, spoken_digits, spoken_time

# CLDR locale per message language. Plain "es" gives "12:30 p. m.", the form patients expect.
LOCALES = {"en": "en_US", "es": "es"}


def default_templates_dir() -> Path:
    """The repository's ``templates/`` in a checkout, or the copy packaged into the wheel."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent / "templates"
    return checkout if checkout.is_dir() else package / "_templates"


@dataclass(frozen=True)
class MessageContext:
    """Everything a template may use (see ``rendering.messages.context``)."""

    language: str
    location_name: str
    location_phone: str | None  # as people write it locally
    reason: str
    segments: Sequence[ClosureSegment]
    reopens: datetime | None
    custom_message: str | None = None
    location_phone_e164: str | None = None  # for tel: links
    first_name: str = ""
    change: str = NoticeChange.ORIGINAL.value  # original / update / cancellation
    appointments: Sequence[AppointmentInfo] = ()  # the patient's own affected appointments
    changed: Sequence[str] = ()  # what an update changed: "times", "reason", "wording"
    extra: dict[str, Any] = field(default_factory=dict)
    # A reason category (domain.notices.ReasonCode): its words come from the language's
    # templates/_macros/reasons.<language>.j2; ``reason`` is then the free text beside it.
    reason_code: str | None = None


@dataclass(frozen=True)
class AppointmentInfo:
    starts: datetime  # local, aware
    provider: str


@dataclass(frozen=True)
class Rendered:
    """One message as patients get it: a text (with its SMS segments), or an email."""

    text: str
    info: SegmentInfo | None = None  # short texts: encoding and segments
    subject: str | None = None  # emails
    html: str | None = None  # emails

    @property
    def cost(self) -> int:
        """What sending it costs against the channel's rate: segments for a text, else 1."""
        return self.info.segments if self.info is not None else 1


class Renderer:
    def __init__(self, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir or default_templates_dir()
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.templates_dir)),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            keep_trailing_newline=False,
        )
        self.env.filters["date"] = _date_filter
        self.env.filters["time"] = _time_filter
        self.env.filters["spoken_date"] = _spoken_date_filter
        self.env.filters["spoken_time"] = _spoken_time_filter
        self.env.filters["digits"] = _digits_filter

    def languages(self) -> list[str]:
        """Languages with a short-text template; each must also have the email parts."""
        return sorted(
            path.name.split(".")[1]
            for path in (self.templates_dir / MessageFormat.TEXT.value).glob("closure.*.txt.j2")
        )

    def render(self, form: MessageFormat, ctx: MessageContext, template: str) -> Rendered:
        if form is MessageFormat.EMAIL:
            return self.render_email(ctx, template)
        if form is MessageFormat.SPOKEN:
            return self.render_spoken(ctx, template)
        return self.render_sms(ctx, template)

    def render_sms(self, ctx: MessageContext, template: str = Template.CLOSURE) -> Rendered:
        raw = self._render(f"{MessageFormat.TEXT.value}/{template}.{ctx.language}.txt.j2", ctx)
        text = normalize_sms_text(" ".join(raw.split()))
        return Rendered(text=text, info=count_segments(text))

    def render_public(self, ctx: MessageContext, template: str = Template.CLOSURE) -> str:
        """The notice's sentences for the public page, banner and feeds (``templates/public/``):
        the same macros as the texts, without greeting, opt-out line or update label."""
        raw = self._render(f"public/{template}.{ctx.language}.txt.j2", ctx)
        return " ".join(raw.split())

    def render_spoken(self, ctx: MessageContext, template: str = Template.CLOSURE) -> Rendered:
        """The words a call speaks: one paragraph, dates and times written for the ear."""
        raw = self._render(f"{MessageFormat.SPOKEN.value}/{template}.{ctx.language}.txt.j2", ctx)
        return Rendered(text=" ".join(raw.split()))

    def render_email(self, ctx: MessageContext, template: str = Template.CLOSURE) -> Rendered:
        name = f"{MessageFormat.EMAIL.value}/{template}.{ctx.language}"
        subject = " ".join(self._render(f"{name}.subject.j2", ctx).split())
        text = self._render(f"{name}.txt.j2", ctx).strip() + "\n"
        html = self._render(f"{name}.html.j2", ctx, html=True)
        return Rendered(text=text, subject=subject, html=html)

    def reason_words(self, language: str, code: str | None, text: str) -> str:
        """The reason as a message in ``language`` says it: the category's words from
        ``_macros/reasons.<language>.j2``, and the free text written in that language beside
        them (in parentheses) or alone."""
        if not code:
            return text
        name = f"_macros/reasons.{language}.j2"
        try:
            words = getattr(self.env.get_template(name).module, "REASONS", {})
        except TemplateNotFound:
            raise TemplateError(
                f"template {name} is missing from {self.templates_dir} (language {language!r} "
                "needs the words of every reason category)"
            ) from None
        if code not in words:
            raise TemplateError(f"template {name} has no words for the reason {code!r}")
        phrase = str(words[code])
        if phrase and text:
            return f"{phrase} ({text})"
        return phrase or text

    def _render(self, name: str, ctx: MessageContext, html: bool = False) -> str:
        locale = LOCALES.get(ctx.language, ctx.language)
        variables = {
            "location": {
                "name": ctx.location_name,
                "phone": ctx.location_phone,
                "phone_e164": ctx.location_phone_e164,
            },
            "reason": self.reason_words(ctx.language, ctx.reason_code, ctx.reason),
            "message": ctx.custom_message,
            "segments": list(ctx.segments),
            "reopens": ctx.reopens,
            "patient": {"first_name": ctx.first_name},
            "change": ctx.change,
            "changed": list(ctx.changed),
            "appointments": [
                {"starts": a.starts, "provider": a.provider} for a in ctx.appointments
            ],
            **ctx.extra,
        }
        if html:
            # Escape the data itself, not only the template's own output: text produced by a
            # macro imported from a non-HTML template is not autoescaped by Jinja.
            variables = _escaped(variables)
        try:
            template = self.env.get_template(name)
            return template.render(variables, locale=locale, language=ctx.language)
        except TemplateNotFound:
            raise TemplateError(
                f"template {name} is missing from {self.templates_dir} "
                f"(language {ctx.language!r} needs one for every channel part)"
            ) from None
        except TemplateSyntaxError as exc:
            where = f"template {exc.name or name} line {exc.lineno}"
            raise TemplateError(f"{where}: {exc.message}") from None
        except UndefinedError as exc:
            raise TemplateError(f"template {name}: {exc.message}") from None
        except JinjaTemplateError as exc:
            raise TemplateError(f"template {name}: {exc}") from None
        except Exception as exc:  # a filter fed the wrong type, a bad date pattern, ...
            raise TemplateError(f"template {name}: {type(exc).__name__}: {exc}") from None


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value


@pass_context
def _date_filter(context: Any, value: date | datetime, pattern: str = "EEEE, M/d/yyyy") -> str:
    """``{{ segment.day|date }}`` in the render's locale (Babel/CLDR)."""
    day = value.date() if isinstance(value, datetime) else value
    return format_date(day, pattern, locale=context["locale"])


@pass_context
def _time_filter(context: Any, value: datetime, pattern: str = "h:mm a") -> str:
    """``{{ segment.starts|time }}``: the wall-clock time already in the location's zone."""
    return format_time(value, pattern, locale=context["locale"])


@pass_context
def _spoken_date_filter(context: Any, value: date | datetime) -> str:
    """``{{ segment.day|spoken_date }}``: "Wednesday, February nineteenth" (voice)."""
    return spoken_date(value, context["language"], context["locale"])


@pass_context
def _spoken_time_filter(context: Any, value: datetime) -> str:
    """``{{ segment.starts|spoken_time }}``: "twelve thirty p.m." (voice)."""
    return spoken_time(value, context["language"])


@pass_context
def _digits_filter(context: Any, value: str) -> str:
    """``{{ location.phone|digits }}``: the number read digit by digit, in its groups (voice)."""
    return spoken_digits(value, context["language"])
