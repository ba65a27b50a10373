"""Console users and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.storage.models import ApiToken, User


def user(s: Session, user_id: int) -> User | None:
    return s.get(User, user_id)


def user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))


def add_user(s: Session, new_user: User) -> User:
    s.add(new_user)
    s.flush()
    return new_user


def add_api_token(s: Session, name: str, token_sha256: str, now: datetime) -> ApiToken:
    token = ApiToken(name=name, token_sha256=token_sha256, created_at=now)
    s.add(token)
    s.flush()
    return token


def api_token_by_hash(s: Session, token_sha256: str) -> ApiToken | None:
    return s.scalar(
        select(ApiToken).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
    )
