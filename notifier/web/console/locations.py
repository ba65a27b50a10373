"""Locations: the clinics, their zones and business hours. Saving new hours never changes a
queued notice: the page lists those the change would word differently, and what to do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from notifier.bootstrap import App
from notifier.errors import ForbiddenError, NotFoundError, ValidationError
from notifier.usecases.locations import LocationSaved
from notifier.usecases.views import LocationView
from notifier.web.console.auth import (
    CsrfChecked,
    CurrentSignIn,
    Manager,
    SignedIn,
    SignIn,
    actor_of,
)
from notifier.web.console.pages import not_found, page
from notifier.web.deps import Application

router = APIRouter()
LOCATION_FIELDS = ("slug", "name", "timezone", "hours", "phone", "language")


def _values(view: LocationView | None) -> dict[str, str]:
    if view is None:
        return dict.fromkeys(LOCATION_FIELDS, "") | {
            "hours": "Mon-Fri 08:00-17:00",
            "language": "en",
        }
    return {
        "slug": view.slug,
        "name": view.name,
        "timezone": view.timezone,
        "hours": view.business_hours,
        "phone": view.phone or "",
        "language": view.default_language,
    }


@router.get("/locations")
def locations(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn
) -> Response:
    locations = app.locations.all(actor_of(request, sign_in))
    return page(request, app, sign_in, "locations.html", locations=locations)


@router.get("/locations/new")
def new_location(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager
) -> Response:
    return _form(request, app, sign_in, _values(None), new=True)


@router.get("/locations/{slug}")
def location_page(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager, slug: str
) -> Response:
    actor = actor_of(request, sign_in)
    found = next((loc for loc in app.locations.all(actor) if loc.slug == slug), None)
    if found is None:
        return not_found(request, app, sign_in, f"There is no location {slug!r}.")
    return _form(request, app, sign_in, _values(found), feeds=found.public_feeds)


@router.post("/locations/{slug}/feeds", dependencies=[CsrfChecked])
def switch_feeds(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    slug: str,
    on: Annotated[str, Form(pattern="^(on|off)$")],
) -> Response:
    """Turn the location's public page, banner and feeds on or off."""
    try:
        view = app.locations.set_public_feeds(actor_of(request, sign_in), slug, on == "on")
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no location {slug!r}.")
    return _form(request, app, sign_in, _values(view), feeds=view.public_feeds, switched=True)


@router.post("/locations", dependencies=[CsrfChecked])
def save_location(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    slug: Annotated[str, Form(max_length=64)],
    name: Annotated[str, Form(max_length=200)],
    timezone: Annotated[str, Form(max_length=64)],
    hours: Annotated[str, Form(max_length=500)],
    phone: Annotated[str, Form(max_length=40)] = "",
    language: Annotated[str, Form(max_length=8)] = "en",
    new: Annotated[str, Form()] = "",
) -> Response:
    values = dict(zip(LOCATION_FIELDS, (slug, name, timezone, hours, phone, language), strict=True))
    try:
        actor = actor_of(request, sign_in)
        saved = app.locations.save(actor, slug, name, timezone, hours, phone or None, language)
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no location {slug!r}.")
    except ForbiddenError as exc:
        return _form(request, app, sign_in, values, new=True, errors={"form": str(exc)}, status=403)
    except ValidationError as exc:
        field = exc.field if exc.field in LOCATION_FIELDS else "form"
        errors = {field: str(exc)}
        return _form(request, app, sign_in, values, new=bool(new), errors=errors, status=422)
    view = saved.location
    return _form(request, app, sign_in, _values(view), saved=saved, feeds=view.public_feeds)


def _form(
    request: Request,
    app: App,
    sign_in: SignIn,
    values: dict[str, str],
    *,
    new: bool = False,
    errors: dict[str, str] | None = None,
    saved: LocationSaved | None = None,
    status: int = 200,
    feeds: bool | None = None,
    switched: bool = False,
) -> Response:
    """The location form; after a save, the queued notices the change words differently."""
    return page(
        request,
        app,
        sign_in,
        "location.html",
        status=status,
        values=values,
        new=new,
        errors=errors or {},
        saved=saved,
        feeds=feeds,
        switched=switched,
        public=(app.settings.public_base_url or str(request.base_url)).rstrip("/")
        + f"/public/{values['slug']}",
    )
