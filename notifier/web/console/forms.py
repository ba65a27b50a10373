"""The notice form (create and update): its fields as posted, what is missing, and where an
error goes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from notifier.errors import ValidationError
from notifier.usecases.notice_requests import NoticeRequest
from notifier.web.console.pages import FIELDS

URGENT_CHOICES = {"yes": True, "no": False}
"""The form's "urgent" choice; anything else (""): urgent when the closure starts that day."""


def form_defaults() -> dict[str, str]:
    return {
        "location": "",
        "kind": "",
        "starts": "",
        "ends": "",
        "reason": "",
        "reason_code": "",
        "reason_es": "",
        "message": "",
        "message_es": "",
        "send_mode": "now",
        "send_at": "",
        "reminder_at": "",
        "reminder_audience": "recipients",
        "urgent": "",
        "fallback": "",
        "emergency": "",
    }


@dataclass(frozen=True)
class NoticeForm:
    values: dict[str, str]
    channels: list[str]

    @property
    def send_at(self) -> str | None:
        """'now', a local time, or None for a draft."""
        mode = self.values["send_mode"]
        return None if mode == "draft" else "now" if mode == "now" else self.values["send_at"]

    def missing(self) -> dict[str, str]:
        """Empty required fields, each with what to put there."""
        errors: dict[str, str] = {}
        if not self.values["location"]:
            errors["location"] = "choose the location that closes"
        if not self.values["starts"]:
            errors["starts"] = "give the date and time the closure starts"
        if not self.values["ends"]:
            errors["ends"] = "give the date and time the clinic reopens (or the closure ends)"
        if not self.values["reason"].strip() and not self.values.get("reason_code"):
            errors["reason"] = "give a reason (e.g. 'inclement weather') or a reason category"
        if not self.channels:
            errors["channels"] = "choose at least one channel"
        if self.values["send_mode"] == "at" and not self.values["send_at"]:
            errors["send_at"] = "give the date and time to send, or choose 'now'"
        return errors

    def request(self) -> NoticeRequest:
        """The form as ``Notices.create`` and ``Notices.draft`` take it."""
        return NoticeRequest(
            location=self.values["location"],
            starts=self.values["starts"],
            ends=self.values["ends"],
            reason=self.values["reason"],
            kind=self.values["kind"] or None,
            message=self.values["message"] or None,
            send_at=self.send_at,
            channels=tuple(self.channels),
            reminder_at=self.values.get("reminder_at") or None,
            reminder_audience=self.values.get("reminder_audience") or "recipients",
            urgent=URGENT_CHOICES.get(self.values.get("urgent", "")),
            reason_code=self.values.get("reason_code") or None,
            reason_texts=_spanish(self.values.get("reason_es")),
            message_texts=_spanish(self.values.get("message_es")),
            fallback=self.values.get("fallback") or None,
            emergency_reason=self.values.get("emergency") or None,
        )


async def notice_form(request: Request) -> NoticeForm:
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    named = (*FIELDS, "send_mode", "reason_es", "message_es")
    values = {name: text(name) for name in named if name not in ("channels", *TEXTS)}
    mode = values["send_mode"]
    values["send_mode"] = mode if mode in ("at", "draft") else "now"
    channels = [c for c in form.getlist("channels") if isinstance(c, str)]
    return NoticeForm(values, channels)


TEXTS = ("reason_texts", "message_texts")  # error keys only: the form posts reason_es, message_es


def _spanish(text: str | None) -> dict[str, str]:
    return {"es": text} if text else {}


def errors_of(error: ValidationError) -> dict[str, str]:
    """The error, under the form field it is about (the whole form if it is about none)."""
    return {error.field if error.field in FIELDS else "form": str(error)}
