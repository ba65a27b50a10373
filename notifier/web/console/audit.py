"""The audit trail page, for admins of every location (anyone else: not found)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from notifier.errors import NotFoundError
from notifier.web.console.auth import CurrentSignIn, SignedIn, actor_of
from notifier.web.console.pages import not_found, page
from notifier.web.deps import Application

router = APIRouter()
SHOWN = 500  # the latest rows; `notifier audit` and the API give them all


@router.get("/audit")
def audit_page(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn
) -> Response:
    try:
        events = app.audit.events(actor_of(request, sign_in))
    except NotFoundError:
        return not_found(request, app, sign_in, "There is no such page.")
    return page(request, app, sign_in, "audit.html", events=list(reversed(events))[:SHOWN])
