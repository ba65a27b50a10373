"""Finding what a person named, or saying clearly that it does not exist. What is outside the
actor's locations does not exist for them (NotFoundError: a 404, never a 403, so another
clinic's ids are not even confirmed)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor, ActorKind
from notifier.domain.notices import NoticeStatus
from notifier.errors import ForbiddenError, NotFoundError, ValidationError
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
from notifier.storage.models import Location, Notice


def require_notice(s: Session, notice_id: int, actor: Actor) -> Notice:
    notice = notice_rows.notice(s, notice_id)
    if notice is None or not actor.sees(notice.location_id):
        raise NotFoundError(f"no notice with id {notice_id}")
    return notice


def latest_version(s: Session, notice_id: int, actor: Actor) -> Notice:
    """The notice the actor names, if it is still the one to change (not replaced, not
    cancelled)."""
    notice = require_notice(s, notice_id, actor)
    if notice.status == NoticeStatus.SUPERSEDED:
        newest = notice_rows.chain(s, notice.root_id or notice.id)[-1]
        raise ValidationError(
            f"notice {notice_id} was replaced by notice {newest.id}; change that one"
        )
    if notice.status == NoticeStatus.CANCELLED:
        raise ValidationError(f"notice {notice_id} is cancelled")
    return notice


def require_location(s: Session, slug: str, actor: Actor, hint: str = "") -> Location:
    location = location_rows.location_by_slug(s, slug)
    if location is None or not actor.sees(location.id):
        raise NotFoundError(f"no location {slug!r}{hint}", "location")
    return location


def location_id_of(s: Session, slug: str | None, actor: Actor) -> int | None:
    """The id of the location a filter names, or None for "every location" (the actor's)."""
    return require_location(s, slug, actor).id if slug else None


def require_manager(actor: Actor) -> None:
    """Only managers and admins (and ``send`` tokens) change anything."""
    if not actor.can_manage:
        raise ForbiddenError("managers only: this account may only read")


def require_patient_data(actor: Actor) -> None:
    """Only actors who see patients (``Actor.sees_patients``) read their names and addresses."""
    if actor.sees_patients:
        return
    if actor.kind is ActorKind.TOKEN:
        raise ForbiddenError(
            "this token may not see patients' names or addresses: create one with "
            "`notifier token create --sees-patients`"
        )
    raise ForbiddenError(
        "viewers may not see patients' names or addresses: ask an admin for the manager role"
    )
