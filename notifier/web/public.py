"""The public routes under /public/{slug}: the page, the website banner, and the calendar,
Atom, CAP and JSON feeds. Read-only, no sign-in, no cookies, no patient data; cacheable for a
minute (``ETag`` and ``Last-Modified``, 304 on revalidation); any origin may read them (the
banner fetches the JSON from the clinic's own website). A location whose public feeds are off
answers 404 everywhere here."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from notifier.bootstrap import App
from notifier.domain.contacts import display_phone
from notifier.domain.public import MAX_AGE, PublicFeed
from notifier.errors import NotFoundError
from notifier.rendering.feeds import LABELS, Links, parse_cap_id
from notifier.rendering.renderer import default_templates_dir
from notifier.web.console.pages import templates
from notifier.web.deps import Application

router = APIRouter(prefix="/public", tags=["public"])
Slug = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
Lang = Annotated[str | None, Query(max_length=35, description="en or es (else Accept-Language)")]

ATOM_TYPE = "application/atom+xml; charset=utf-8"
CALENDAR_TYPE = "text/calendar; charset=utf-8"
CAP_TYPE = "application/cap+xml"
SCRIPT_TYPE = "text/javascript; charset=utf-8"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Response])


def readable(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """A public route for GET and HEAD: link checkers, feed readers and CDNs ask HEAD first
    (its answer has GET's status and headers, no body). HEAD is left out of the OpenAPI
    description, which would otherwise list every route twice under one operation id."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
        return router.get(path, summary=summary)(endpoint)

    return register


@readable("/{slug}.json", summary="The location's published closures as JSON")
def feed_json(request: Request, app: Application, slug: Slug, lang: Lang = None) -> Response:
    feed, links = _feed(app, request, slug)
    language = language_of(request, lang, app, feed)
    body = json.dumps(app.feeds.data(feed, language, links), ensure_ascii=False).encode()
    return cached(request, body, "application/json", feed.changed)


@readable("/{slug}", summary="The location's closures: a page for people and search engines")
def public_page(request: Request, app: Application, slug: Slug, lang: Lang = None) -> Response:
    feed, links = _feed(app, request, slug)
    language = language_of(request, lang, app, feed)
    data = app.feeds.data(feed, language, links)
    json_ld = json.dumps(app.feeds.json_ld(feed, links), ensure_ascii=False)
    phone = feed.clinic.phone
    html = (
        templates()
        .get_template("public.html")
        .render(
            feed=feed,
            links=links,
            language=language,
            languages=app.feeds.languages(),
            labels=LABELS[language],
            closures=[c for c in data["closures"] if c["state"] in ("current", "upcoming")],
            phone=display_phone(phone) if phone else None,
            # Inside <script>: "<" escaped so no text can end the element.
            json_ld=Markup(json_ld.replace("<", "\\u003c")),
            updated=feed.changed.astimezone(feed.tz).isoformat(),
            updated_local=f"{feed.changed.astimezone(feed.tz):%Y-%m-%d %H:%M %Z}",
        )
    )
    return cached(request, html.encode(), "text/html; charset=utf-8", feed.changed)


@readable("/{slug}/banner.js", summary="The website banner (paste it with async)")
def banner(request: Request, app: Application, slug: Slug) -> Response:
    _feed(app, request, slug)  # 404 when the location has no public feeds
    script = default_templates_dir() / "public" / "banner.js"
    changed = datetime.fromtimestamp(int(script.stat().st_mtime), UTC)
    return cached(request, script.read_bytes(), SCRIPT_TYPE, changed)


@readable("/{slug}/closures.ics", summary="The closures as a calendar (RFC 5545)")
def calendar(request: Request, app: Application, slug: Slug, lang: Lang = None) -> Response:
    feed, links = _feed(app, request, slug)
    language = language_of(request, lang, app, feed)
    return cached(request, app.feeds.ics(feed, language, links), CALENDAR_TYPE, feed.changed)


@readable("/{slug}/closures.atom", summary="The closures as an Atom feed (RFC 4287)")
def atom(request: Request, app: Application, slug: Slug, lang: Lang = None) -> Response:
    feed, links = _feed(app, request, slug)
    language = language_of(request, lang, app, feed)
    return cached(request, app.feeds.atom(feed, language, links), ATOM_TYPE, feed.changed)


@readable("/{slug}/cap/{message}.xml", summary="One CAP 1.2 message of a notice's versions")
def cap(
    request: Request,
    app: Application,
    slug: Slug,
    message: Annotated[str, Path(max_length=40, pattern=r"^\d+-\d+$")],
) -> Response:
    feed, links = _feed(app, request, slug)
    wanted = parse_cap_id(message)
    notice = next((n for n in feed.notices if wanted and n.root_id == wanted[0]), None)
    version = notice.version(wanted[1]) if notice and wanted else None
    if notice is None or version is None:
        raise NotFoundError(f"no published CAP message {message!r} at {slug!r}")
    body = app.feeds.cap(feed, notice, version, links)
    return cached(request, body, CAP_TYPE, version.sent)


def _feed(app: App, request: Request, slug: str) -> tuple[PublicFeed, Links]:
    feed = app.public.feed(slug)
    base = app.settings.public_base_url or str(request.base_url)
    return feed, Links(base.rstrip("/"), feed.slug)


def language_of(request: Request, asked: str | None, app: App, feed: PublicFeed) -> str:
    """``?lang=`` when we speak it, else the best of Accept-Language, else the location's."""
    available = app.feeds.languages()
    if asked and asked[:2].lower() in available:
        return asked[:2].lower()
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if quality > 0 and tag[:2].lower() in available:
            ranked.append((-quality, position, tag[:2].lower()))
    if ranked:
        return min(ranked)[2]
    default = feed.clinic.default_language
    return default if default in available else available[0]


def cached(request: Request, body: bytes, media_type: str, changed: datetime) -> Response:
    """``body`` with its validators and a minute's freshness; 304 when the client's copy is
    still the one (``If-None-Match`` first, else ``If-Modified-Since``)."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {
        "ETag": etag,
        "Last-Modified": format_datetime(changed.astimezone(UTC), usegmt=True),
        "Cache-Control": f"public, max-age={MAX_AGE}",
        "Access-Control-Allow-Origin": "*",
        "Vary": "Accept-Language",
    }
    if _fresh(request, etag, changed):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _fresh(request: Request, etag: str, changed: datetime) -> bool:
    matches = request.headers.get("if-none-match")
    if matches is not None:
        tags = {tag.strip().removeprefix("W/") for tag in matches.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        client = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if client.tzinfo is None:
        return False
    return changed.replace(microsecond=0) <= client
