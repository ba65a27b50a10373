"""What anyone may read about a location's closures: its published notices, for the public
page, the banner and the feeds. No actor (it is public), no patient data (notices and the
location only), nothing private or unpublished."""

from __future__ import annotations

from collections.abc import Sequence

from notifier.domain.closures import zone
from notifier.domain.notices import Clinic, NoticeStatus
from notifier.domain.public import (
    KEEP_ENDED,
    PublicFeed,
    PublicNotice,
    StoredVersion,
    last_change,
    published_versions,
)
from notifier.errors import NotFoundError
from notifier.storage import notices as notice_rows
from notifier.storage import public as public_rows
from notifier.storage.models import Notice
from notifier.usecases import UseCase


class PublicNotices(UseCase):
    def feed(self, slug: str) -> PublicFeed:
        """The published notices of location ``slug``, as of now; NotFoundError when there is
        no such location or its public feeds are off (the same answer: nothing to see)."""
        now = self.clock.now()
        with self.db.session() as s:
            location = public_rows.public_location(s, slug)
            if location is None:
                raise NotFoundError(f"no public closures for {slug!r}", "location")
            chains = public_rows.published_chains(s, location.id, now, now - KEEP_ENDED)
            notices = tuple(_public(chain) for chain in chains)
            return PublicFeed(
                slug=location.slug,
                clinic=Clinic(location.name, location.phone, location.default_language),
                tz=zone(location.timezone),
                notices=notices,
                changed=last_change(list(notices), now, location.created_at),
                now=now,
            )


def _public(chain: Sequence[Notice]) -> PublicNotice:
    stored = [
        StoredVersion(
            facts=notice_rows.facts(row),
            created=row.created_at,
            updated=row.updated_at,
            withdrawn_in_place=row.status == NoticeStatus.CANCELLED,
        )
        for row in chain
    ]
    latest = chain[-1]
    published = max(latest.publish_at or latest.created_at, chain[0].created_at)
    return PublicNotice(chain[0].id, published_versions(stored), published)
