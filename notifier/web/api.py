"""The JSON API under /api/v1: a thin layer over ``NotifierService`` with bearer tokens.

Errors: 401 without or with a bad token, 404 for unknown ids, 422 for invalid input (the same
messages the CLI prints).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator

from notifier import consent, tokens
from notifier.bootstrap import App
from notifier.contacts import mask_address, normalize_email, normalize_phone
from notifier.domain import DeliveryState
from notifier.service import DeliveryView, NoticeView, Preview
from notifier.web.deps import get_app

_bearer = HTTPBearer(auto_error=False, description="a token from `notifier token create`")
Channel = Literal["sms", "email"]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Application = Annotated[App, Depends(get_app)]


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The calling token's name; 401 without a valid bearer token."""
    app: App = request.app.state.app
    name = None
    if credentials is not None and credentials.scheme.lower() == "bearer":
        name = tokens.token_name(app.db, credentials.credentials)
    if name is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid API token is required: Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


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


class NoticeIn(BaseModel):
    location: Slug
    starts: str = Field(max_length=40, examples=["2025-02-19 12:30"])
    ends: str = Field(max_length=40, examples=["2025-02-21 00:00"])
    reason: str = Field(max_length=500, examples=["inclement weather"])
    kind: Literal["closure", "early-close", "delayed-open"] | None = None
    message: str | None = Field(default=None, max_length=1600)
    send_at: str = Field(default="now", max_length=40)
    channels: list[Channel] = Field(default=["sms", "email"], min_length=1)
    reminder_at: str | None = Field(
        default=None, max_length=40, description="send the same message again at this time"
    )
    urgent: bool | None = Field(
        default=None, description="null: urgent when the closure starts on the day of sending"
    )

    _clean = field_validator("starts", "ends", "reason", "message", "send_at", "reminder_at")(_text)


class OptOutIn(BaseModel):
    channel: Channel
    address: str = Field(min_length=1, max_length=254)

    _clean = field_validator("address")(_text)


class OptOutOut(BaseModel):
    channel: Channel
    address: str  # masked
    changed: bool


@router.post("/notices", status_code=201, response_model=NoticeView)
def create_notice(body: NoticeIn, app: Application) -> NoticeView:
    """Create a notice and its broadcast (times in the location's zone)."""
    return app.service.create_notice(
        body.location,
        body.starts,
        body.ends,
        body.reason,
        body.kind,
        body.message,
        body.send_at,
        ",".join(body.channels),
        body.urgent,
        reminder_at=body.reminder_at,
    )


@router.get("/notices", response_model=list[NoticeView])
def list_notices(
    app: Application, location: Annotated[Slug | None, Query()] = None
) -> list[NoticeView]:
    return app.service.list_notices(location)


@router.get("/notices/{notice_id}", response_model=NoticeView)
def show_notice(notice_id: Id, app: Application) -> NoticeView:
    return app.service.notice(notice_id)


@router.post("/notices/{notice_id}/cancel", response_model=NoticeView)
def cancel_notice(notice_id: Id, app: Application) -> NoticeView:
    """Cancel: nothing more of this notice is sent."""
    return app.service.cancel_notice(notice_id)


@router.get("/notices/{notice_id}/preview", response_model=Preview)
def preview_notice(
    notice_id: Id, app: Application, channel: Annotated[Channel | None, Query()] = None
) -> Preview:
    """Exactly what patients will receive."""
    return app.service.preview(notice_id, channel)


@router.get("/notices/{notice_id}/summary", response_model=dict[str, dict[str, int]])
def notice_summary(notice_id: Id, app: Application) -> dict[str, dict[str, int]]:
    """Delivery counts by channel and state."""
    return app.service.summary(notice_id)


@router.get("/deliveries", response_model=list[DeliveryView])
def list_deliveries(
    app: Application,
    notice: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    state: Annotated[DeliveryState | None, Query()] = None,
    channel: Annotated[Channel | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> list[DeliveryView]:
    """The delivery log (addresses masked), oldest first."""
    return app.service.delivery_log(notice, state.value if state else None, channel, limit, offset)


@router.post("/opt-outs", response_model=OptOutOut)
def add_opt_out(body: OptOutIn, app: Application) -> OptOutOut:
    """Record an opt-out received another way (a call, a letter, a mailto unsubscribe)."""
    address = _address(app, body.channel, body.address)
    with app.db.session() as s:
        changed = consent.opt_out(s, body.channel, address, consent.Source.API, app.clock.now())
    return OptOutOut(channel=body.channel, address=_mask(address), changed=changed)


@router.post("/opt-outs/remove", response_model=OptOutOut)
def remove_opt_out(body: OptOutIn, app: Application) -> OptOutOut:
    """Lift an opt-out (the patient asked to receive closure messages again)."""
    address = _address(app, body.channel, body.address)
    with app.db.session() as s:
        changed = consent.opt_in(s, body.channel, address, consent.Source.API, app.clock.now())
    return OptOutOut(channel=body.channel, address=_mask(address), changed=changed)


def _address(app: App, channel: str, address: str) -> str:
    if channel == "sms":
        return normalize_phone(address, app.settings.default_region)
    return normalize_email(address)


def _mask(address: str) -> str:
    return mask_address(address)
