"""The inbox: patients' texts per location, newest first, with unread counts; a conversation's
page (opening it reads it) where managers answer, mark it done, assign it, and switch the
location's closure auto-reply."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from notifier.bootstrap import App
from notifier.errors import NotFoundError, ValidationError
from notifier.web.console.auth import (
    CsrfChecked,
    CurrentSignIn,
    Manager,
    SignedIn,
    SignIn,
    actor_of,
)
from notifier.web.console.pages import not_found, page, redirect
from notifier.web.deps import Application

router = APIRouter()
GONE = "There is no such conversation."


@router.get("/inbox")
def inbox(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    location: str | None = None,
) -> Response:
    actor = actor_of(request, sign_in)
    try:
        conversations = app.replies.conversations(actor, location or None)
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no location {location!r}.")
    return page(
        request,
        app,
        sign_in,
        "inbox.html",
        conversations=conversations,
        places=app.replies.locations(actor),
        chosen=location or "",
        waiting_minutes=app.settings.reply_waiting_minutes,
    )


@router.get("/inbox/{conversation_id}")
def conversation_page(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    conversation_id: int,
) -> Response:
    # A manager opening it has read it; a viewer looking on leaves it unread for the desk.
    return _conversation(request, app, sign_in, conversation_id, read=user.can_manage)


def _conversation(
    request: Request,
    app: App,
    sign_in: SignIn,
    conversation_id: int,
    *,
    read: bool = False,
    error: str | None = None,
    draft: str = "",
    status: int = 200,
) -> Response:
    actor = actor_of(request, sign_in)
    try:
        view = app.replies.conversation(actor, conversation_id, read=read)
    except NotFoundError:
        return not_found(request, app, sign_in, GONE)
    return page(
        request,
        app,
        sign_in,
        "conversation.html",
        status=status,
        c=view,
        error=error,
        draft=draft,
    )


@router.post("/inbox/{conversation_id}/answer", dependencies=[CsrfChecked])
def answer(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    conversation_id: int,
    message: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    try:
        app.replies.answer(actor_of(request, sign_in), conversation_id, message)
    except NotFoundError:
        return not_found(request, app, sign_in, GONE)
    except ValidationError as exc:
        return _conversation(
            request, app, sign_in, conversation_id, error=str(exc), draft=message, status=422
        )
    # Queued: the worker sends it within seconds; the page shows its state as it moves.
    return redirect(f"/console/inbox/{conversation_id}", request, app, sign_in)


@router.post("/inbox/{conversation_id}/done", dependencies=[CsrfChecked])
def done(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    conversation_id: int,
    done: Annotated[str, Form(pattern="^(yes|no)$")] = "yes",
) -> Response:
    try:
        app.replies.mark_done(actor_of(request, sign_in), conversation_id, done == "yes")
    except NotFoundError:
        return not_found(request, app, sign_in, GONE)
    return redirect(f"/console/inbox/{conversation_id}", request, app, sign_in)


@router.post("/inbox/{conversation_id}/assign", dependencies=[CsrfChecked])
def assign(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    conversation_id: int,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    try:
        app.replies.assign(actor_of(request, sign_in), conversation_id, email or None)
    except NotFoundError as exc:
        if exc.field == "user":
            return _conversation(request, app, sign_in, conversation_id, error=str(exc), status=422)
        return not_found(request, app, sign_in, GONE)
    return redirect(f"/console/inbox/{conversation_id}", request, app, sign_in)


@router.post("/inbox/auto-reply", dependencies=[CsrfChecked])
def auto_reply(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    location: Annotated[str, Form(max_length=64)],
    on: Annotated[str, Form(pattern="^(on|off)$")],
) -> Response:
    try:
        app.replies.set_auto_reply(actor_of(request, sign_in), location, on == "on")
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no location {location!r}.")
    return redirect("/console/inbox", request, app, sign_in)
