"""The web console for clinic managers and ops: server-rendered pages under ``/console``.

Sign in, list notices per location, create one with a live preview, update it (a new version)
or cancel it (optionally telling those already told), watch its deliveries, export them, read
each one's history, import patients and list them. A thin layer over the same use cases as the
CLI (``NotifierService``, ``import_patients``, ``Accounts``); templates live in
``templates/web/``, apart from the message templates.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from notifier.accounts import Accounts
from notifier.bootstrap import App
from notifier.domain import DeliveryState, NoticeStatus, zone
from notifier.errors import NotFoundError, ValidationError
from notifier.importer import import_patients
from notifier.rendering import default_templates_dir
from notifier.service import DELIVERY_CSV_COLUMNS, DeliveryView, NoticeView
from notifier.web.console_auth import (
    ConsoleSession,
    CsrfChecked,
    Manager,
    Session,
    SignedIn,
    load_session,
    safe_next,
    save_session,
    sign_in_throttle,
)
from notifier.web.deps import get_app

router = APIRouter(prefix="/console", include_in_schema=False)
Application = Annotated[App, Depends(get_app)]

STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
FIELDS = (
    "location",
    "kind",
    "starts",
    "ends",
    "reason",
    "message",
    "channels",
    "send_at",
    "reminder_at",
)
# Service errors name what they are about in their first words (see domain and service).
FIELD_RULES = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"^the reminder", "reminder_at"),
        (r"^(the )?send time", "send_at"),
        (r"^no location", "location"),
        (r"^start ", "starts"),
        (r"^(end |the closure end|the updated closure)", "ends"),
        (r"^give a reason", "reason"),
        (r"^the custom message", "message"),
        (r"^channels? ", "channels"),
        (r"^kind ", "kind"),
    )
)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
TABLE_ROWS = 500
# Summary buckets, in bar order: (label, states).
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("delivered", (DeliveryState.DELIVERED,)),
    ("sent", (DeliveryState.SENT,)),
    ("queued", (DeliveryState.PENDING, DeliveryState.SENDING)),
    ("failed", (DeliveryState.FAILED, DeliveryState.UNDELIVERED)),
    ("skipped", (DeliveryState.SKIPPED,)),
    ("stopped", (DeliveryState.CANCELLED, DeliveryState.EXPIRED)),
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(_web_dir())),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = _local
    env.globals["FIELDS"] = FIELDS
    return env


def _web_dir() -> Path:
    return default_templates_dir() / "web"


def _local(iso: str | None, fmt: str = "%a %Y-%m-%d %H:%M", tz: str | None = None) -> str:
    """An ISO time as the clinic reads it: in ``tz`` when given, else as stored."""
    if not iso:
        return "–"
    instant = datetime.fromisoformat(iso)
    return (instant.astimezone(zone(tz)) if tz else instant).strftime(fmt)


def _zone_of(app: App, slug: str) -> str:
    return next((loc.timezone for loc in app.service.list_locations() if loc.slug == slug), "UTC")


def _page(
    request: Request,
    app: App,
    session: ConsoleSession,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    html = (
        _templates()
        .get_template(template)
        .render(request=request, user=session.user, csrf=session.csrf, **context)
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    save_session(response, request, app, session)
    return response


def _redirect(url: str, request: Request, app: App, session: ConsoleSession) -> Response:
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    save_session(response, request, app, session)
    return response


# --- static assets, sign-in ---------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    return FileResponse(
        _web_dir() / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/console/notices", status_code=303)


@router.get("/login")
def login_page(request: Request, app: Application, next: str | None = None) -> Response:
    session = load_session(request, app)
    if session.user is not None:
        return _redirect(safe_next(next), request, app, session)
    return _page(request, app, session, "login.html", next=safe_next(next), email="", error=None)


@router.post("/login", dependencies=[CsrfChecked])
def login(
    request: Request,
    app: Application,
    session: Session,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "",
) -> Response:
    throttle, now = sign_in_throttle(request), app.clock.now()
    wait = throttle.wait(email, now)
    if wait is not None:
        minutes = max(1, -(-int(wait.total_seconds()) // 60))
        return _page(
            request,
            app,
            session,
            "login.html",
            status=429,
            next=safe_next(next),
            email=email,
            error=f"Too many failed attempts for this email: try again in {minutes} min.",
        )
    user = Accounts(app.db, app.clock).authenticate(email, password)
    if user is None:
        throttle.failed(email, now)
        return _page(
            request,
            app,
            session,
            "login.html",
            status=401,
            next=safe_next(next),
            email=email,
            error="That email and password do not match a console user.",
        )
    throttle.succeeded(email)
    session.sign_in(user)
    return _redirect(safe_next(next), request, app, session)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, app: Application, session: Session) -> Response:
    session.sign_out()
    return _redirect("/console/login", request, app, session)


# --- notices ------------------------------------------------------------------------------


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
    session: Session,
    user: SignedIn,
    location: str | None = None,
) -> Response:
    service = app.service
    now = app.clock.now()
    if location and location not in {loc.slug for loc in service.list_locations()}:
        return _not_found(request, app, session, f"There is no location {location!r}.")
    groups = {
        loc.slug: LocationNotices(loc.slug, loc.name, loc.timezone, [], [], [])
        for loc in service.list_locations()
        if not location or loc.slug == location
    }
    for view in service.list_notices(location or None):
        group = groups.get(view.location)
        if group is None:
            continue
        starts, ends = datetime.fromisoformat(view.starts), datetime.fromisoformat(view.ends)
        if view.status != NoticeStatus.ACTIVE or ends <= now:  # cancelled or replaced
            group.past.append(view)
        elif starts <= now:
            group.active.append(view)
        else:
            group.upcoming.append(view)
    for group in groups.values():
        group.past.reverse()  # most recent first
    return _page(
        request,
        app,
        session,
        "notices.html",
        groups=list(groups.values()),
        locations=service.list_locations(),
        chosen=location or "",
    )


def _form_defaults() -> dict[str, str]:
    return {
        "location": "",
        "kind": "",
        "starts": "",
        "ends": "",
        "reason": "",
        "message": "",
        "send_mode": "now",
        "send_at": "",
        "reminder_at": "",
    }


@router.get("/notices/new")
def new_notice(request: Request, app: Application, session: Session, user: Manager) -> Response:
    locations = app.service.list_locations()
    values = _form_defaults()
    if len(locations) == 1:
        values["location"] = locations[0].slug
    return _new_page(request, app, session, values, ["sms", "email"], {}, None)


def _new_page(
    request: Request,
    app: App,
    session: ConsoleSession,
    values: dict[str, str],
    channels: Sequence[str],
    errors: dict[str, str],
    preview: Any,
    status: int = 200,
) -> HTMLResponse:
    return _page(
        request,
        app,
        session,
        "notice_new.html",
        status=status,
        values=values,
        channels=list(channels),
        errors=errors,
        preview=preview,
        locations=app.service.list_locations(),
        now=_now_by_location(app),
    )


def _now_by_location(app: App) -> dict[str, str]:
    now = app.clock.now()
    return {
        loc.slug: now.astimezone(zone(loc.timezone)).strftime("%Y-%m-%d %H:%M")
        for loc in app.service.list_locations()
    }


@dataclass(frozen=True)
class NoticeForm:
    values: dict[str, str]
    channels: list[str]

    @property
    def send_at(self) -> str:
        return "now" if self.values["send_mode"] == "now" else self.values["send_at"]

    def missing(self) -> dict[str, str]:
        """Empty required fields, each with what to put there."""
        errors: dict[str, str] = {}
        if not self.values["location"]:
            errors["location"] = "choose the location that closes"
        if not self.values["starts"]:
            errors["starts"] = "give the date and time the closure starts"
        if not self.values["ends"]:
            errors["ends"] = "give the date and time the clinic reopens (or the closure ends)"
        if not self.values["reason"].strip():
            errors["reason"] = "give a reason (e.g. 'inclement weather')"
        if not self.channels:
            errors["channels"] = "choose at least one channel"
        if self.values["send_mode"] != "now" and not self.values["send_at"]:
            errors["send_at"] = "give the date and time to send, or choose 'now'"
        return errors

    def call_arguments(self) -> dict[str, Any]:
        return {
            "location_slug": self.values["location"],
            "starts": self.values["starts"],
            "ends": self.values["ends"],
            "reason": self.values["reason"],
            "kind": self.values["kind"] or None,
            "message": self.values["message"] or None,
            "send_at": self.send_at,
            "channels": ",".join(self.channels),
            "reminder_at": self.values.get("reminder_at") or None,
        }


async def _notice_form(request: Request) -> NoticeForm:
    form = await request.form()

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    values = {name: text(name) for name in (*FIELDS, "send_mode") if name != "channels"}
    values["send_mode"] = "at" if values["send_mode"] == "at" else "now"
    channels = [c for c in form.getlist("channels") if isinstance(c, str)]
    return NoticeForm(values, channels)


def field_of(message: str) -> str:
    """The form field a service error is about, by what its message says ("form" if none)."""
    lowered = message.lower()
    for pattern, name in FIELD_RULES:
        if pattern.search(lowered):
            return name
    return "form"


@router.post("/notices/preview", dependencies=[CsrfChecked])
async def preview_fragment(
    request: Request, app: Application, session: Session, user: Manager
) -> Response:
    """The live preview: what these fields would send, or what is wrong with them."""
    draft = await _notice_form(request)
    change = "update" if (await request.form()).get("change") == "update" else "original"
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            preview = app.service.preview_draft(**draft.call_arguments(), change=change)
        except ValidationError as exc:
            errors = {field_of(str(exc)): str(exc)}
    html = (
        _templates().get_template("_preview.html").render(preview=preview, errors=errors, live=True)
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.post("/notices", dependencies=[CsrfChecked])
async def create_notice(
    request: Request, app: Application, session: Session, user: Manager
) -> Response:
    draft = await _notice_form(request)
    form = await request.form()
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            if form.get("action") == "preview":
                preview = app.service.preview_draft(**draft.call_arguments())
            else:
                view = app.service.create_notice(**draft.call_arguments())
                return _redirect(f"/console/notices/{view.id}?created=1", request, app, session)
        except ValidationError as exc:
            errors = {field_of(str(exc)): str(exc)}
    return _new_page(
        request,
        app,
        session,
        draft.values,
        draft.channels,
        errors,
        preview,
        status=422 if errors else 200,
    )


@dataclass(frozen=True)
class Bucket:
    label: str
    count: int
    x: float  # percent
    width: float  # percent


@dataclass(frozen=True)
class Summary:
    total: int
    buckets: list[Bucket]
    by_channel: dict[str, dict[str, int]]
    sending: bool  # still moving: the page keeps refreshing the summary


def _summary(app: App, view: NoticeView) -> Summary:
    by_channel = app.service.summary(view.id)
    counts = {label: 0 for label, _ in BUCKETS}
    for states in by_channel.values():
        for state, count in states.items():
            for label, members in BUCKETS:
                if state in members:
                    counts[label] += count
    total = sum(counts.values())
    buckets, x = [], 0.0
    for label, _ in BUCKETS:
        width = 100.0 * counts[label] / total if total else 0.0
        buckets.append(Bucket(label, counts[label], round(x, 3), round(width, 3)))
        x += width
    scheduled = any(b["status"] in {"scheduled", "sending"} for b in view.broadcasts)
    # Texts in "sent" still await the provider's delivery report; emails get none.
    awaiting_report = by_channel.get("sms", {}).get(DeliveryState.SENT, 0) > 0
    sending = counts["queued"] > 0 or scheduled or awaiting_report
    return Summary(total, buckets, by_channel, sending and view.status != NoticeStatus.CANCELLED)


@dataclass(frozen=True)
class LogFilter:
    state: str = ""
    channel: str = ""
    error_code: str = ""
    q: str = ""

    def apply(self, rows: Sequence[DeliveryView]) -> list[DeliveryView]:
        needle = self.q.strip().lower()
        return [
            r
            for r in rows
            if (not self.error_code or (r.error_code or "") == self.error_code.strip())
            and (not needle or needle in r.address.lower() or needle == str(r.id))
        ]

    def query(self) -> str:
        return urlencode({k: v for k, v in vars(self).items() if v})


def _log(app: App, notice_id: int, filters: LogFilter) -> list[DeliveryView]:
    rows = app.service.delivery_log(
        notice_id, filters.state or None, filters.channel or None, limit=None
    )
    return filters.apply(rows)


def _notice_or_404(app: App, notice_id: int) -> NoticeView | None:
    try:
        return app.service.notice(notice_id)
    except NotFoundError:
        return None


def _not_found(request: Request, app: App, session: ConsoleSession, what: str) -> HTMLResponse:
    return _page(request, app, session, "error.html", status=404, title="Not found", message=what)


@router.get("/notices/{notice_id}")
def notice_page(
    request: Request,
    app: Application,
    session: Session,
    user: SignedIn,
    notice_id: int,
    state: str = "",
    channel: str = "",
    error_code: str = "",
    q: str = "",
    created: int = 0,
    updated: int = 0,
) -> Response:
    view = _notice_or_404(app, notice_id)
    if view is None:
        return _not_found(request, app, session, f"There is no notice {notice_id}.")
    return _notice_page(
        request,
        app,
        session,
        view,
        LogFilter(state, channel, error_code, q),
        created=bool(created),
        updated=bool(updated),
    )


def _notice_page(
    request: Request,
    app: App,
    session: ConsoleSession,
    view: NoticeView,
    filters: LogFilter,
    status: int = 200,
    update: NoticeForm | None = None,
    errors: dict[str, str] | None = None,
    preview: Any = None,
    created: bool = False,
    updated: bool = False,
) -> HTMLResponse:
    rows = _log(app, view.id, filters)
    all_rows = app.service.delivery_log(view.id)
    chain = _chain(app, view)
    updatable = (
        session.user is not None
        and session.user.can_manage
        and view.status == NoticeStatus.ACTIVE
        and datetime.fromisoformat(view.ends) > app.clock.now()
    )
    told = updatable and _reached(app, [v for v in chain if v.version <= view.version])
    form = update or NoticeForm(_update_defaults(view), _channels_of(view))
    return _page(
        request,
        app,
        session,
        "notice.html",
        status=status,
        notice=view,
        summary=_summary(app, view),
        rows=rows[:TABLE_ROWS],
        matched=len(rows),
        filters=filters,
        states=[s.value for s in DeliveryState],
        error_codes=sorted({r.error_code for r in all_rows if r.error_code}),
        tz=_zone_of(app, view.location),
        created=created,
        updated=updated,
        chain=chain,
        supersedes=next((v for v in chain if v.id == view.supersedes_id), None),
        superseded_by=next((v for v in chain if v.supersedes_id == view.id), None),
        updatable=updatable,
        told=told,
        values=form.values,
        channels=form.channels,
        errors=errors or {},
        preview=preview,
    )


def _chain(app: App, view: NoticeView) -> list[NoticeView]:
    """Every version of this notice, oldest first."""
    root = view.root_id or view.id
    return sorted(
        (v for v in app.service.list_notices(view.location) if (v.root_id or v.id) == root),
        key=lambda v: v.version,
    )


def _reached(app: App, versions: Sequence[NoticeView]) -> bool:
    """Whether any of these versions reached anyone (an update then goes only to them)."""
    done = (DeliveryState.SENT, DeliveryState.DELIVERED)
    return any(
        states.get(state, 0) > 0
        for v in versions
        for states in app.service.summary(v.id).values()
        for state in done
    )


def _channels_of(view: NoticeView) -> list[str]:
    names: list[str] = []
    for broadcast in view.broadcasts:
        names.extend(cast(list[str], broadcast["channels"]))
    return list(dict.fromkeys(names))


def _update_defaults(view: NoticeView) -> dict[str, str]:
    """The update form, filled in with the notice as it stands (times in its location's zone)."""
    return _form_defaults() | {
        "location": view.location,
        "starts": view.starts[:16],
        "ends": view.ends[:16],
        "reason": view.reason,
        "message": view.message or "",
    }


@router.post("/notices/{notice_id}/update", dependencies=[CsrfChecked])
async def update_notice(
    request: Request, app: Application, session: Session, user: Manager, notice_id: int
) -> Response:
    """A new version of the notice: new times, reason or wording (``update_notice``).

    Only what differs from the notice as it stands is passed on, so a notice of several
    intervals keeps them unless its times are changed here.
    """
    view = _notice_or_404(app, notice_id)
    if view is None:
        return _not_found(request, app, session, f"There is no notice {notice_id}.")
    posted = await _notice_form(request)
    current = _update_defaults(view)
    # The location, channels and send time are the notice's own: an update cannot change them.
    values = posted.values | {"location": view.location, "kind": "", "send_mode": "now"}
    draft = NoticeForm(values, _channels_of(view))
    errors = draft.missing()
    preview = None
    if not errors:
        try:
            if (await request.form()).get("action") == "preview":
                preview = app.service.preview_draft(**draft.call_arguments(), change="update")
            else:
                times = {"starts": values["starts"], "ends": values["ends"]}
                moved = any(
                    values[k].replace("T", " ") != current[k].replace("T", " ") for k in times
                )
                new = app.service.update_notice(
                    notice_id,
                    **(times if moved else {}),
                    reason=values["reason"],
                    message=values["message"] or None,
                )
                return _redirect(f"/console/notices/{new.id}?updated=1", request, app, session)
        except ValidationError as exc:
            errors = {field_of(str(exc)): str(exc)}
    return _notice_page(
        request,
        app,
        session,
        view,
        LogFilter(),
        status=422 if errors else 200,
        update=draft,
        errors=errors,
        preview=preview,
    )


@router.get("/notices/{notice_id}/summary")
def summary_fragment(
    request: Request, app: Application, session: Session, user: SignedIn, notice_id: int
) -> Response:
    view = _notice_or_404(app, notice_id)
    if view is None:
        return Response(status_code=404)
    html = (
        _templates().get_template("_summary.html").render(notice=view, summary=_summary(app, view))
    )
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/notices/{notice_id}/deliveries.csv")
def deliveries_csv(
    app: Application,
    user: SignedIn,
    notice_id: int,
    state: str = "",
    channel: str = "",
    error_code: str = "",
    q: str = "",
) -> Response:
    if _notice_or_404(app, notice_id) is None:
        return Response(status_code=404)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=DELIVERY_CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in _log(app, notice_id, LogFilter(state, channel, error_code, q)):
        writer.writerow(vars(row))
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="notice-{notice_id}-deliveries.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/notices/{notice_id}/cancel", dependencies=[CsrfChecked])
def cancel(
    request: Request,
    app: Application,
    session: Session,
    user: Manager,
    notice_id: int,
    notify: Annotated[str, Form()] = "",
) -> Response:
    """Cancel; with ``notify``, those already told hear "open after all" (a new version)."""
    try:
        view = app.service.cancel_notice(notice_id, notify=bool(notify))
    except NotFoundError:
        return _not_found(request, app, session, f"There is no notice {notice_id}.")
    except ValidationError as exc:
        return _page(
            request, app, session, "error.html", status=409, title="Not cancelled", message=exc
        )
    return _redirect(f"/console/notices/{view.id}", request, app, session)


@router.get("/deliveries/{delivery_id}")
def delivery_page(
    request: Request, app: Application, session: Session, user: SignedIn, delivery_id: int
) -> Response:
    try:
        delivery, events = app.service.delivery_history(delivery_id)
    except NotFoundError:
        return _not_found(request, app, session, f"There is no delivery {delivery_id}.")
    tz = _zone_of(app, app.service.notice(delivery.notice_id).location)
    return _page(request, app, session, "delivery.html", delivery=delivery, events=events, tz=tz)


# --- patients -----------------------------------------------------------------------------


@router.get("/patients")
def patients(
    request: Request,
    app: Application,
    session: Session,
    user: SignedIn,
    location: str = "",
    page: int = 1,
) -> Response:
    size = 100
    page = max(page, 1)
    try:
        rows, total = app.service.list_patients(location or None, size, (page - 1) * size)
    except NotFoundError as exc:
        return _not_found(request, app, session, str(exc))
    return _page(
        request,
        app,
        session,
        "patients.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // size)),
        locations=app.service.list_locations(),
        chosen=location,
    )


@router.get("/patients/import")
def import_page(request: Request, app: Application, session: Session, user: Manager) -> Response:
    return _page(request, app, session, "import.html", report=None, error=None, filename=None)


@router.post("/patients/import", dependencies=[CsrfChecked])
async def import_upload(
    request: Request,
    app: Application,
    session: Session,
    user: Manager,
    file: Annotated[UploadFile, File()],
) -> Response:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    filename = Path(file.filename or "patients.csv").name
    error = None
    report = None
    if not data:
        error = "choose a CSV file to import"
    elif len(data) > MAX_UPLOAD_BYTES:
        error = f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: split it"
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            error = "the file is not UTF-8 text: save it as 'CSV UTF-8' and try again"
        else:
            try:
                report = import_patients(
                    app.db, app.clock, io.StringIO(text, newline=""), app.settings.default_region
                )
            except ValidationError as exc:
                error = str(exc)
    return _page(
        request,
        app,
        session,
        "import.html",
        status=422 if error else 200,
        report=report,
        error=error,
        filename=filename,
    )
