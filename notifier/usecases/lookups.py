"""Finding what a person named, or saying clearly that it does not exist."""

from __future__ import annotations

from sqlalchemy.orm import Session

from notifier.errors import NotFoundError
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
from notifier.storage.models import Location, Notice


def require_notice(s: Session, notice_id: int) -> Notice:
    notice = notice_rows.notice(s, notice_id)
    if notice is None:
        raise NotFoundError(f"no notice with id {notice_id}")
    return notice


def require_location(s: Session, slug: str, hint: str = "") -> Location:
    location = location_rows.location_by_slug(s, slug)
    if location is None:
        raise NotFoundError(f"no location {slug!r}{hint}", "location")
    return location


def location_id_of(s: Session, slug: str | None) -> int | None:
    """The id of the location a filter names, or None for "every location"."""
    return require_location(s, slug).id if slug else None
