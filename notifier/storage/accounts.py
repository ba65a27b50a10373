"""Console users and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from notifier.storage.models import ApiToken, Location, TokenLocation, User, UserLocation
from notifier.storage.rows import insert_new


def user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def user_by_id(s: Session, user_id: int) -> User | None:
    return s.get(User, user_id)


def add_user(s: Session, email: str, role: str, password_hash: str, now: datetime) -> bool:
    """Add a console user; False if one with that email exists (or is being added)."""
    return insert_new(s, User, email=email, role=role, password_hash=password_hash, created_at=now)


def add_api_token(
    s: Session,
    name: str,
    token_sha256: str,
    now: datetime,
    sees_patients: bool = False,
    scope: str = "send",
    location_ids: frozenset[int] | None = None,
    user_id: int | None = None,
) -> ApiToken:
    token = ApiToken(
        name=name,
        token_sha256=token_sha256,
        created_at=now,
        sees_patients=sees_patients,
        scope=scope,
        all_locations=location_ids is None,
        user_id=user_id,
    )
    s.add(token)
    s.flush()
    s.add_all(TokenLocation(token_id=token.id, location_id=lid) for lid in location_ids or ())
    s.flush()
    return token


def set_user_locations(s: Session, user: User, location_ids: frozenset[int] | None) -> None:
    """Scope a user to these locations (None: every location)."""
    user.all_locations = location_ids is None
    s.execute(delete(UserLocation).where(UserLocation.user_id == user.id))
    s.add_all(UserLocation(user_id=user.id, location_id=lid) for lid in location_ids or ())
    s.flush()


def user_location_ids(s: Session, user: User) -> frozenset[int] | None:
    """The locations a user may see; None for every location."""
    if user.all_locations:
        return None
    query = select(UserLocation.location_id).where(UserLocation.user_id == user.id)
    return frozenset(s.scalars(query))


def token_location_ids(s: Session, token: ApiToken) -> frozenset[int] | None:
    """The locations a token may see; None for every location."""
    if token.all_locations:
        return None
    query = select(TokenLocation.location_id).where(TokenLocation.token_id == token.id)
    return frozenset(s.scalars(query))


def location_slugs(s: Session, location_ids: frozenset[int] | None) -> list[str] | None:
    """The slugs of these locations, sorted; None for every location."""
    if location_ids is None:
        return None
    query = select(Location.slug).where(Location.id.in_(location_ids)).order_by(Location.slug)
    return list(s.scalars(query))


def api_token_by_hash(s: Session, token_sha256: str) -> ApiToken | None:
    return s.scalar(
        select(ApiToken).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
    )


def all_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.id)))


def api_tokens(s: Session) -> list[ApiToken]:
    return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))


def api_token(s: Session, token_id: int) -> ApiToken | None:
    return s.get(ApiToken, token_id)


def live_tokens_named(s: Session, name: str) -> list[ApiToken]:
    return list(
        s.scalars(
            select(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
    )
