"""Locations: the clinics, their zones and business hours."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.storage.models import Location


def location_by_slug(s: Session, slug: str) -> Location | None:
    return s.scalar(select(Location).where(Location.slug == slug))


def locations(s: Session) -> Sequence[Location]:
    return s.scalars(select(Location).order_by(Location.slug)).all()
