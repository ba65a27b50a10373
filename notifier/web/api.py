"""The JSON API under /api/v1: a thin layer over the use cases, with bearer tokens.

Errors: 401 without or with a bad token, 404 for unknown ids and for those of locations the
token does not have, 403 for a ``read`` token asked to change something, 422 for invalid input
(the same messages the CLI prints). Each token acts as an ``Actor`` (``require_token``): a
service token as itself, a personal token (``--user EMAIL``) as its console user, the only kind
of token that may approve a notice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from notifier.bootstrap import App
from notifier.channels import specs
from notifier.domain.actors import Actor
from notifier.domain.consent import Source
from notifier.domain.contacts import mask_address, normalize_address
from notifier.domain.deliveries import DeliveryState
from notifier.domain.notices import Audience, NoticeKind, ReasonCode, ReminderAudience
from notifier.usecases.audit import AuditView
from notifier.usecases.locations import Reworded
from notifier.usecases.notice_requests import NoticeRequest
from notifier.usecases.plans import Plan
from notifier.usecases.views import (
    DeliveryView,
    EventView,
    HistoryEntry,
    LocationView,
    NoticeView,
    NotReached,
    Preview,
)
from notifier.web.deps import Application
from notifier.web.proxies import client_ip

_bearer = HTTPBearer(
    auto_error=False,
    description="a token from `notifier token create`: a service token acts as itself; a "
    "personal token (`--user EMAIL`) acts as that console user, and only it may approve",
)
# The registered channels, as an enum in the schema (no channel is named here).
ChannelName = StrEnum("ChannelName", {name: name for name in specs()})  # type: ignore[misc]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Language = Annotated[str, Field(min_length=2, max_length=8, pattern=r"^[a-z]{2,3}$")]


TOKEN_REQUIRED = "a valid API token is required: Authorization: Bearer <token>"


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The calling token as an actor; 401 without a valid bearer token."""
    app: App = request.app.state.app
    found: Actor | None = getattr(request.state, "api_actor", None)  # the body gate's finding
    if found is None and credentials is not None and credentials.scheme.lower() == "bearer":
        found = app.accounts.token_actor(credentials.credentials, client_ip(request))
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            TOKEN_REQUIRED,
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.api_actor = found
    return found


TokenActor = Annotated[Actor, Depends(require_token)]


_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"description": "no or bad API token"},
    404: {"description": "unknown id"},
    422: {"description": "invalid input (the message says which rule)"},
}
router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    dependencies=[Depends(require_token)],
    responses=_ERRORS,
)


def _text(value: str | None) -> str | None:
    if value is None:
        return value
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


class StrictIn(BaseModel):
    """A request body: a field we do not know is refused (422 naming it), never ignored, so a
    misspelt or unsupported option cannot silently turn into the default."""

    model_config = ConfigDict(extra="forbid")


class NoticeIn(StrictIn):
    location: Slug
    starts: str = Field(max_length=40, examples=["2025-02-19 12:30"])
    ends: str = Field(max_length=40, examples=["2025-02-21 00:00"])
    reason: str = Field(
        default="",
        max_length=500,
        examples=["inclement weather"],
        description="in the location's language; may be empty with a reason_code",
    )
    reason_code: ReasonCode | None = Field(
        default=None, description="the reason as a category, worded in every template language"
    )
    reason_texts: dict[Language, Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict,
        description="the reason in other languages: {'es': '...'}; a message never carries "
        "another language's text",
    )
    kind: NoticeKind | None = None
    message: str | None = Field(default=None, max_length=1600)
    message_texts: dict[Language, Annotated[str, Field(max_length=1600)]] = Field(
        default_factory=dict, description="the custom message in other languages"
    )
    send_at: str | None = Field(
        default="now", max_length=40, description="null: a draft, sent by POST …/send"
    )
    channels: list[ChannelName] | None = Field(
        default=None, min_length=1, description="default: every channel"
    )
    reminder_at: str | None = Field(
        default=None, max_length=40, description="send the same message again at this time"
    )
    reminder_audience: ReminderAudience = Field(
        default=ReminderAudience.RECIPIENTS,
        description="recipients: whom the first message reached; everyone: the audience then",
    )
    urgent: bool | None = Field(
        default=None, description="null: urgent when the closure starts on the day of sending"
    )
    audience: Audience = Field(
        default=Audience.EVERYONE,
        description="everyone: the general notice to every patient; affected: only patients "
        "with an appointment in the closure; both: each the message that fits",
    )
    emergency_reason: str | None = Field(
        default=None,
        max_length=500,
        description="send without a second manager's approval, for this stated reason "
        "(recorded on the notice and flagged in the log)",
    )
    fallback: list[ChannelName] | None = Field(
        default=None,
        min_length=2,
        examples=[["sms", "voice", "email"]],
        description="a patient whose message failed for good for a reason the next channel "
        "may cure is tried there, once, in this order",
    )
    publish_at: str | None = Field(
        default=None,
        max_length=40,
        description="when the public page and feeds show the notice (default: once queued)",
    )
    private: bool = Field(default=False, description="never on the public page and feeds")

    _clean = field_validator(
        "starts",
        "ends",
        "reason",
        "message",
        "send_at",
        "reminder_at",
        "emergency_reason",
        "publish_at",
    )(_text)

    @field_validator("reason_texts", "message_texts")
    @classmethod
    def _clean_texts(cls, texts: dict[str, str]) -> dict[str, str]:
        return {language: _text(text) or "" for language, text in texts.items()}

    def request(self) -> NoticeRequest:
        """The body as ``Notices.create`` and ``Notices.draft`` take it."""
        return NoticeRequest(
            location=self.location,
            starts=self.starts,
            ends=self.ends,
            reason=self.reason,
            kind=self.kind.value if self.kind else None,
            message=self.message,
            send_at=self.send_at,
            channels=tuple(c.value for c in self.channels or ()),
            urgent=self.urgent,
            audience=self.audience.value,
            reminder_at=self.reminder_at,
            reminder_audience=self.reminder_audience.value,
            emergency_reason=self.emergency_reason,
            reason_code=self.reason_code.value if self.reason_code else None,
            reason_texts=self.reason_texts,
            message_texts=self.message_texts,
            publish_at=self.publish_at,
            private=self.private,
            fallback=">".join(c.value for c in self.fallback) if self.fallback else None,
        )


class OptOutIn(StrictIn):
    channel: ChannelName
    address: str = Field(min_length=1, max_length=254)

    _clean = field_validator("address")(_text)


class OptOutOut(BaseModel):
    channel: ChannelName
    address: str  # masked
    changed: bool


class LocationIn(StrictIn):
    name: str = Field(min_length=1, max_length=200)
    timezone: str = Field(min_length=1, max_length=64, examples=["America/New_York"])
    hours: str = Field(default="Mon-Fri 08:00-17:00", max_length=500)
    phone: str | None = Field(default=None, max_length=40)
    language: str = Field(default="en", max_length=8)

    _clean = field_validator("name", "timezone", "hours", "phone", "language")(_text)


class RewordedOut(BaseModel):
    notice_id: int
    starts: str
    ends: str
    before: str
    stored: str
    with_new_settings: str | None
    problem: str | None
    advice: str

    @classmethod
    def of(cls, reworded: Reworded) -> RewordedOut:
        return cls(**vars(reworded), advice=reworded.advice)


class LocationOut(BaseModel):
    location: LocationView
    created: bool
    reworded: list[RewordedOut] = Field(
        description="queued notices these settings would word differently: they keep their "
        "stored words; `advice` says how to re-word or cancel them"
    )


@router.post("/notices", status_code=201, response_model=NoticeView)
def create_notice(body: NoticeIn, app: Application, actor: TokenActor) -> NoticeView:
    """Create a notice and its broadcast (times in the location's zone). Above
    NOTIFIER_APPROVAL_THRESHOLD patients it awaits approval (POST …/approve)."""
    return app.notices.create(actor, body.request()).notice


@router.post("/notices/preview", response_model=Preview)
def preview_new_notice(body: NoticeIn, app: Application, actor: TokenActor) -> Preview:
    """What creating this notice would send, checked the same way; stores nothing."""
    return app.notices.draft(actor, body.request())


@router.get("/notices", response_model=list[NoticeView])
def list_notices(
    app: Application, actor: TokenActor, location: Annotated[Slug | None, Query()] = None
) -> list[NoticeView]:
    return app.notices.all(actor, location)


@router.get("/notices/{notice_id}", response_model=NoticeView)
def show_notice(notice_id: Id, app: Application, actor: TokenActor) -> NoticeView:
    return app.notices.get(actor, notice_id)


@router.post("/notices/{notice_id}/cancel", response_model=NoticeView)
def cancel_notice(notice_id: Id, app: Application, actor: TokenActor) -> NoticeView:
    """Cancel: nothing more of this notice is sent (in the undo window: nothing at all)."""
    return app.notices.cancel(actor, notice_id)


APPROVER_REMOVED = (  # under 190 characters: web.invalid shows no more
    "`approver` was removed: the approver is the person whose personal token calls "
    "(`notifier token create --name NAME --user EMAIL`); send no body"
)


class ApproveIn(StrictIn):
    """No fields: the approver is the person whose personal token calls."""

    @model_validator(mode="before")
    @classmethod
    def _no_approver(cls, data: object) -> object:
        if isinstance(data, dict) and "approver" in data:
            raise ValueError(APPROVER_REMOVED)
        return data


@router.post(
    "/notices/{notice_id}/approve",
    response_model=NoticeView,
    responses={
        403: {
            "description": "a service token (approval needs a person), or a personal token of "
            "the read scope or of a viewer"
        }
    },
)
def approve_notice(
    notice_id: Id, app: Application, actor: TokenActor, body: ApproveIn | None = None
) -> NoticeView:
    """A second manager lets a notice awaiting approval go out, as themselves: only a
    personal token (`notifier token create --name NAME --user EMAIL --scope send`) of a
    manager who sees the notice and did not create it. A service token gets 403: approval
    needs a person (the console, `notifier notice approve ID --as EMAIL`, or a personal
    token). The approval, its history and the audit trail name the manager and the token."""
    return app.notices.approve(actor, notice_id)


@router.get("/notices/{notice_id}/plan", response_model=Plan)
def notice_plan(notice_id: Id, app: Application, actor: TokenActor) -> Plan:
    """Before anything is sent: per channel who gets a message, who does not and why, quiet
    hours, languages, segments, cost, first and last send time."""
    return app.plans.of_notice(actor, notice_id)


@router.get("/notices/{notice_id}/history", response_model=list[HistoryEntry])
def notice_history(notice_id: Id, app: Application, actor: TokenActor) -> list[HistoryEntry]:
    """Who created, approved, sent alone or cancelled the notice and its versions, and when."""
    return app.notices.history(actor, notice_id)


class SendIn(BaseModel):
    send_at: str = Field(max_length=40, examples=["now", "2025-02-19 07:00"])

    _clean = field_validator("send_at")(_text)


@router.post("/notices/{notice_id}/send", response_model=NoticeView)
def send_notice(notice_id: Id, body: SendIn, app: Application, actor: TokenActor) -> NoticeView:
    """Schedule a draft notice (times in the location's zone)."""
    return app.notices.send(actor, notice_id, body.send_at)[0]


@router.post("/notices/{notice_id}/retry", response_model=dict[str, int])
def retry_notice(notice_id: Id, app: Application, actor: TokenActor) -> dict[str, int]:
    """Schedule again the broadcasts whose fan-out failed (after the cause was fixed)."""
    return {"broadcasts": app.notices.retry(actor, notice_id)}


@router.get("/notices/{notice_id}/preview", response_model=Preview)
def preview_notice(
    notice_id: Id,
    app: Application,
    actor: TokenActor,
    channel: Annotated[ChannelName | None, Query()] = None,
) -> Preview:
    """Exactly what patients will receive."""
    return app.previews.of_notice(actor, notice_id, channel.value if channel else None)


@router.get("/notices/{notice_id}/summary", response_model=dict[str, dict[str, int]])
def notice_summary(notice_id: Id, app: Application, actor: TokenActor) -> dict[str, dict[str, int]]:
    """Delivery counts by channel and state."""
    return app.deliveries.summary(actor, notice_id)


@router.get("/deliveries", response_model=list[DeliveryView])
def list_deliveries(
    app: Application,
    actor: TokenActor,
    notice: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    channel: Annotated[ChannelName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    show_patients: Annotated[bool, Query()] = False,
) -> list[DeliveryView]:
    """The delivery log (addresses masked), oldest first: notices' messages and the inbox's
    staff answers and auto-replies (``kind``, ``conversation_id``; ``pending`` also finds
    those ``queued``); ``show_patients`` fills in each message's ``patient`` and
    ``patient_name`` (tokens created with ``--sees-patients``; 403 otherwise)."""
    return app.deliveries.log(
        actor,
        notice,
        state.value if state else None,
        channel.value if channel else None,
        limit,
        offset,
        show_patients=show_patients,
    )


class DeliveryHistory(BaseModel):
    delivery: DeliveryView
    events: list[EventView]


@router.get("/deliveries/{delivery_id}", response_model=DeliveryHistory)
def delivery_history(delivery_id: Id, app: Application, actor: TokenActor) -> DeliveryHistory:
    """One delivery (address masked) and every event it went through, oldest first: queued,
    each attempt, the provider's reports, errors with their codes."""
    delivery, events = app.deliveries.history(actor, delivery_id)
    return DeliveryHistory(delivery=delivery, events=events)


@router.get("/notices/{notice_id}/not-reached", response_model=list[NotReached])
def not_reached(notice_id: Id, app: Application, actor: TokenActor) -> list[NotReached]:
    """Patients this notice did not reach, with phone and email, for the front desk to call
    (tokens created with ``--sees-patients``; 403 otherwise)."""
    return app.deliveries.not_reached(actor, notice_id)


@router.post("/opt-outs", response_model=OptOutOut)
def add_opt_out(body: OptOutIn, app: Application, actor: TokenActor) -> OptOutOut:
    """Record an opt-out received another way (a call, a letter, a mailto unsubscribe); any
    token may."""
    address = _address(app, body.channel, body.address)
    changed = app.consent.opt_out(body.channel.value, address, Source.API, actor=actor)
    return OptOutOut(channel=body.channel, address=mask_address(address), changed=changed)


@router.post("/opt-outs/remove", response_model=OptOutOut)
def remove_opt_out(body: OptOutIn, app: Application, actor: TokenActor) -> OptOutOut:
    """Lift an opt-out (the patient asked to receive closure messages again): only for an
    address a patient of the token's locations has (404 otherwise)."""
    address = _address(app, body.channel, body.address)
    changed = app.consent.opt_in(actor, body.channel.value, address, Source.API)
    return OptOutOut(channel=body.channel, address=mask_address(address), changed=changed)


@router.get("/locations", response_model=list[LocationView])
def list_locations(app: Application, actor: TokenActor) -> list[LocationView]:
    return app.locations.all(actor)


@router.put("/locations/{slug}", response_model=LocationOut)
def save_location(slug: Slug, body: LocationIn, app: Application, actor: TokenActor) -> LocationOut:
    """Add or change a location. Queued notices keep their words; those the new zone or hours
    would word differently are listed with what to do."""
    saved = app.locations.save(
        actor, slug, body.name, body.timezone, body.hours, body.phone, body.language
    )
    return LocationOut(
        location=saved.location,
        created=saved.created,
        reworded=[RewordedOut.of(r) for r in saved.reworded],
    )


@router.get("/audit", response_model=list[AuditView])
def audit_trail(
    app: Application,
    actor: TokenActor,
    since: Annotated[datetime | None, Query(description="ISO 8601, with a zone")] = None,
    of: Annotated[str | None, Query(max_length=254, description="user:3, token:2…")] = None,
) -> list[AuditView]:
    """The audit trail, oldest first (tokens of every location with the send scope)."""
    return app.audit.events(actor, since, of)


def _address(app: App, channel: ChannelName, address: str) -> str:
    spec = app.deps.spec(channel.value)
    return normalize_address(spec.address, address, app.settings.default_region)
