"""Locations: the clinics, their zones and business hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.storage.models import Location
from notifier.storage.rows import insert_new


def location_by_slug(s: Session, slug: str) -> Location | None:
    return s.scalar(select(Location).where(Location.slug == slug))


def locations(s: Session) -> Sequence[Location]:
    return s.scalars(select(Location).order_by(Location.slug)).all()


def add_location(
    s: Session, slug: str, name: str, timezone: str, hours: dict[str, list[str]], now: datetime
) -> bool:
    """Add a location by its slug; False if one with that slug exists (the caller updates it)."""
    return insert_new(
        s,
        Location,
        slug=slug,
        name=name,
        timezone=timezone,
        business_hours=hours,
        default_language="en",
        created_at=now,
    )
