"""The notices pages: the list per location, a new notice with its live preview, a notice's
page (facts, versions, summary bar, delivery log), its update, cancel and retry."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from notifier.bootstrap import App
from notifier.domain.actors import Actor
from notifier.domain.closures import zone
from notifier.domain.deliveries import DeliveryState
from notifier.domain.notices import Action, NoticeChange, Period
from notifier.errors import NotFoundError, ValidationError
from notifier.usecases.plans import Plan
from notifier.usecases.views import NoticeView, Preview
from notifier.web.console.auth import (
    CsrfChecked,
    CurrentSignIn,
    Manager,
    SignedIn,
    SignIn,
    actor_of,
)
from notifier.web.console.deliveries import Filters, LogFilter, delivery_log
from notifier.web.console.forms import NoticeForm, errors_of, form_defaults, notice_form
from notifier.web.console.pages import (
    channel_labels,
    fragment,
    not_found,
    page,
    redirect,
)
from notifier.web.console.summary import summary_of
from notifier.web.deps import Application

router = APIRouter()
log = logging.getLogger(__name__)
TABLE_ROWS = 500


# --- the list -----------------------------------------------------------------------------


@dataclass
class LocationNotices:
    slug: str
    name: str
    timezone: str
    upcoming: list[NoticeView]
    active: list[NoticeView]
    past: list[NoticeView]


@router.get("/notices")
def notices(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    location: str | None = None,
) -> Response:
    actor = actor_of(request, sign_in)
    locations = app.locations.all(actor)
    if location and location not in {loc.slug for loc in locations}:
        return not_found(request, app, sign_in, f"There is no location {location!r}.")
    groups = {
        loc.slug: LocationNotices(loc.slug, loc.name, loc.timezone, [], [], [])
        for loc in locations
        if not location or loc.slug == location
    }
    for view in app.notices.all(actor, location or None):
        group = groups.get(view.location)
        if group is None:
            continue
        if view.period == Period.NOW:
            group.active.append(view)
        elif view.period == Period.UPCOMING:
            group.upcoming.append(view)
        else:
            group.past.append(view)
    for group in groups.values():
        group.past.reverse()  # most recent first
    return page(
        request,
        app,
        sign_in,
        "notices.html",
        groups=list(groups.values()),
        locations=locations,
        chosen=location or "",
        waiting=app.replies.waiting(actor),  # patients' texts unanswered too long
        waiting_minutes=app.settings.reply_waiting_minutes,
    )


# --- the form -----------------------------------------------------------------------------


def _now_by_location(app: App, actor: Actor) -> dict[str, str]:
    now = app.clock.now()
    return {
        loc.slug: now.astimezone(zone(loc.timezone)).strftime("%Y-%m-%d %H:%M")
        for loc in app.locations.all(actor)
    }


@router.get("/notices/new")
def new_notice(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager
) -> Response:
    locations = app.locations.all(actor_of(request, sign_in))
    values = form_defaults()
    if len(locations) == 1:
        values["location"] = locations[0].slug
    return _new_page(request, app, sign_in, values, list(app.deps.default_channels()), {}, None)


def _new_page(
    request: Request,
    app: App,
    sign_in: SignIn,
    values: dict[str, str],
    channels: Sequence[str],
    errors: dict[str, str],
    preview: Preview | None,
    status: int = 200,
) -> HTMLResponse:
    return page(
        request,
        app,
        sign_in,
        "notice_new.html",
        status=status,
        values=values,
        channels=list(channels),
        errors=errors,
        preview=preview,
        locations=app.locations.all(actor_of(request, sign_in)),
        now=_now_by_location(app, actor_of(request, sign_in)),
    )


@router.post("/notices/preview", dependencies=[CsrfChecked])
async def preview_fragment(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager
) -> Response:
    """The live preview: what these fields would send, or what is wrong with them."""
    draft = await notice_form(request)
    updating = (await request.form()).get("change") == "update"
    change = NoticeChange.UPDATE if updating else NoticeChange.ORIGINAL
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            preview = app.notices.draft(actor_of(request, sign_in), draft.request(), change)
        except ValidationError as exc:
            errors = errors_of(exc)
    return fragment(
        "_preview.html", preview=preview, errors=errors, live=True, labels=channel_labels(app)
    )


@router.post("/notices", dependencies=[CsrfChecked])
async def create_notice(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager
) -> Response:
    draft = await notice_form(request)
    form = await request.form()
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            if form.get("action") == "preview":
                preview = app.notices.draft(
                    actor_of(request, sign_in), replace(draft.request(), send_at="now")
                )
            else:
                created = app.notices.create(actor_of(request, sign_in), draft.request())
                return redirect(
                    f"/console/notices/{created.notice.id}?created=1", request, app, sign_in
                )
        except ValidationError as exc:
            errors = errors_of(exc)
    return _new_page(
        request,
        app,
        sign_in,
        draft.values,
        draft.channels,
        errors,
        preview,
        status=422 if errors else 200,
    )


# --- a notice's page ----------------------------------------------------------------------


def _notice_or_none(app: App, actor: Actor, notice_id: int) -> NoticeView | None:
    try:
        return app.notices.get(actor, notice_id)
    except NotFoundError:
        return None


@router.get("/notices/{notice_id}")
def notice_page(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    notice_id: int,
    filters: Filters,
    created: int = 0,
    updated: int = 0,
) -> Response:
    view = _notice_or_none(app, actor_of(request, sign_in), notice_id)
    if view is None:
        return not_found(request, app, sign_in, f"There is no notice {notice_id}.")
    return _notice_page(
        request, app, sign_in, view, filters, created=bool(created), updated=bool(updated)
    )


def _notice_page(
    request: Request,
    app: App,
    sign_in: SignIn,
    view: NoticeView,
    filters: LogFilter,
    status: int = 200,
    update: NoticeForm | None = None,
    errors: dict[str, str] | None = None,
    preview: Preview | None = None,
    created: bool = False,
    updated: bool = False,
) -> HTMLResponse:
    actor = actor_of(request, sign_in)
    manager = actor.can_manage
    rows = delivery_log(app, actor, view.id, filters, show_patients=actor.sees_patients)
    all_rows = app.deliveries.log(actor, view.id)
    chain = app.notices.chain(actor, view.id)
    updatable = manager and Action.UPDATE in view.actions
    told = updatable and app.deliveries.reached_anyone(actor, view.id)
    form = update or NoticeForm(_update_defaults(view), view.channels)
    return page(
        request,
        app,
        sign_in,
        "notice.html",
        status=status,
        notice=view,
        summary=summary_of(app, actor, view),
        rows=rows[:TABLE_ROWS],
        matched=len(rows),
        filters=filters,
        states=[s.value for s in DeliveryState],
        error_codes=sorted({r.error_code for r in all_rows if r.error_code}),
        tz=view.timezone,
        created=created,
        updated=updated,
        chain=chain,
        supersedes=next((v for v in chain if v.id == view.supersedes_id), None),
        superseded_by=next((v for v in chain if v.supersedes_id == view.id), None),
        updatable=updatable,
        actions=view.actions if manager else [],
        show_patients=actor.sees_patients,
        told=told,
        values=form.values,
        channels=form.channels,
        errors=errors or {},
        preview=preview,
        public=(app.settings.public_base_url or str(request.base_url)).rstrip("/")
        + f"/public/{view.location}",
        root_id=view.root_id or view.id,
        plan=_plan_or_none(app, actor, view) if manager else None,
        history=app.notices.history(actor, view.id),
    )


def _plan_or_none(app: App, actor: Actor, view: NoticeView) -> Plan | None:
    """The plan of a notice that can still send (none for one that is over or withdrawn); a
    plan that cannot be made never stops the page."""
    if not view.actions:
        return None
    try:
        return app.plans.of_notice(actor, view.id)
    except Exception:  # the page's boundary: the notice and its log still show
        log.warning(
            "the plan of notice %s could not be made",
            view.id,
            exc_info=True,
            extra={"action": "plan_failed", "notice_id": view.id},
        )
        return None


def _update_defaults(view: NoticeView) -> dict[str, str]:
    """The update form, filled in with the notice as it stands (times in its location's zone)."""
    return form_defaults() | {
        "location": view.location,
        "starts": view.starts[:16],
        "ends": view.ends[:16],
        "reason": view.reason,
        "reason_code": view.reason_code or "",
        "message": view.message or "",
    }


@router.post("/notices/{notice_id}/update", dependencies=[CsrfChecked])
async def update_notice(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager, notice_id: int
) -> Response:
    """A new version of the notice: new times, reason or wording.

    Only what differs from the notice as it stands is passed on, so a notice of several
    intervals keeps them unless its times are changed here.
    """
    view = _notice_or_none(app, actor_of(request, sign_in), notice_id)
    if view is None:
        return not_found(request, app, sign_in, f"There is no notice {notice_id}.")
    posted = await notice_form(request)
    current = _update_defaults(view)
    # The location, channels and send time are the notice's own: an update cannot change them.
    values = posted.values | {"location": view.location, "kind": "", "send_mode": "now"}
    draft = NoticeForm(values, view.channels)
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            if (await request.form()).get("action") == "preview":
                actor = actor_of(request, sign_in)
                preview = app.notices.draft(actor, draft.request(), NoticeChange.UPDATE)
            else:
                times = {"starts": values["starts"], "ends": values["ends"]}
                moved = any(
                    values[k].replace("T", " ") != current[k].replace("T", " ") for k in times
                )
                new = app.notices.update(
                    actor_of(request, sign_in),
                    notice_id,
                    starts=times["starts"] if moved else None,
                    ends=times["ends"] if moved else None,
                    reason=values["reason"],
                    message=values["message"] or None,
                )
                return redirect(f"/console/notices/{new.id}?updated=1", request, app, sign_in)
        except ValidationError as exc:
            errors = errors_of(exc)
    return _notice_page(
        request,
        app,
        sign_in,
        view,
        LogFilter(),
        status=422 if errors else 200,
        update=draft,
        errors=errors,
        preview=preview,
    )


@router.get("/notices/{notice_id}/summary")
def summary_fragment(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn, notice_id: int
) -> Response:
    view = _notice_or_none(app, actor_of(request, sign_in), notice_id)
    if view is None:
        return Response(status_code=404)
    summary = summary_of(app, actor_of(request, sign_in), view)
    return fragment("_summary.html", notice=view, summary=summary)


@router.post("/notices/{notice_id}/cancel", dependencies=[CsrfChecked])
def cancel(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    notice_id: int,
    notify: Annotated[str, Form()] = "",
) -> Response:
    """Cancel; with ``notify``, those already told hear "open after all" (a new version)."""
    return _act(
        request,
        app,
        sign_in,
        notice_id,
        "Not cancelled",
        lambda: app.notices.cancel(actor_of(request, sign_in), notice_id, bool(notify)).id,
    )


@router.post("/notices/{notice_id}/send", dependencies=[CsrfChecked])
def send(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    notice_id: int,
    send_mode: Annotated[str, Form()] = "now",
    send_at: Annotated[str, Form()] = "",
) -> Response:
    """Schedule a draft: now, or at a local time."""
    when = "now" if send_mode != "at" else send_at.replace("T", " ")
    return _act(
        request,
        app,
        sign_in,
        notice_id,
        "Not sent",
        lambda: app.notices.send(actor_of(request, sign_in), notice_id, when)[0].id,
    )


@router.post("/notices/{notice_id}/approve", dependencies=[CsrfChecked])
def approve(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager, notice_id: int
) -> Response:
    """A second manager lets a notice awaiting approval go out (never its creator)."""
    return _act(
        request,
        app,
        sign_in,
        notice_id,
        "Not approved",
        lambda: app.notices.approve(actor_of(request, sign_in), notice_id).id,
    )


@router.post("/notices/{notice_id}/retry", dependencies=[CsrfChecked])
def retry(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager, notice_id: int
) -> Response:
    """Schedule again the broadcasts of this notice whose fan-out failed."""

    def retried() -> int:
        app.notices.retry(actor_of(request, sign_in), notice_id)
        return notice_id

    return _act(request, app, sign_in, notice_id, "Not retried", retried)


def _act(
    request: Request,
    app: App,
    sign_in: SignIn,
    notice_id: int,
    refused: str,
    action: Callable[[], int],
) -> Response:
    """Do ``action`` to a notice, then show the notice it names; 404 for an unknown notice, 409
    with the reason when the action is refused."""
    try:
        shown = action()
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no notice {notice_id}.")
    except ValidationError as exc:
        return page(request, app, sign_in, "error.html", status=409, title=refused, message=exc)
    return redirect(f"/console/notices/{shown}", request, app, sign_in)
