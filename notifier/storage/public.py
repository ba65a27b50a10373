"""What the public feeds read: the published notices of a location, chain by chain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from notifier.storage.models import Location, Notice


def published_chains(
    s: Session, location_id: int, now: datetime, ended_after: datetime
) -> list[Sequence[Notice]]:
    """Every version (oldest first) of each notice of a location that is published by ``now``
    and not private, and whose closure ends after ``ended_after``; chains by start."""
    root = func.coalesce(Notice.root_id, Notice.id)
    roots = select(root).where(
        Notice.location_id == location_id,
        Notice.private.is_(False),
        Notice.publish_at.is_not(None),
        Notice.publish_at <= now,
        Notice.ends_at > ended_after,
    )
    rows = s.scalars(
        select(Notice)
        .options(joinedload(Notice.location))
        .where(root.in_(roots))
        .order_by(root, Notice.version, Notice.id)
    ).all()
    chains: dict[int, list[Notice]] = {}
    for row in rows:
        chains.setdefault(row.root_id or row.id, []).append(row)
    return sorted(chains.values(), key=lambda chain: (chain[-1].starts_at, chain[0].id))


def public_location(s: Session, slug: str) -> Location | None:
    """The location ``slug`` if its public feeds are on."""
    return s.scalar(select(Location).where(Location.slug == slug, Location.public_feeds))
