"""Console users: managers (notices, imports) and viewers (read-only logs); argon2id hashes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from notifier import store
from notifier.clock import Clock
from notifier.contacts import mask_email, normalize_email
from notifier.db import Database
from notifier.errors import ValidationError
from notifier.models import User

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
_HASHER = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password of anyone's")


class Role(StrEnum):
    MANAGER = "manager"  # creates and cancels notices, imports patients
    VIEWER = "viewer"  # reads notices and delivery logs


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    role: Role

    @property
    def can_manage(self) -> bool:
        return self.role is Role.MANAGER


class Accounts:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create_user(self, email: str, role: str, password: str) -> UserView:
        try:
            chosen = Role(role)
        except ValueError:
            raise ValidationError(
                f"role {role!r} is not one of {', '.join(r.value for r in Role)}"
            ) from None
        address = normalize_email(email)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValidationError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        with self.db.session() as s:
            if store.user_by_email(s, address) is not None:
                raise ValidationError(f"a user {mask_email(address)} already exists")
            user = store.add_user(
                s,
                User(
                    email=address,
                    role=chosen.value,
                    password_hash=_HASHER.hash(password),
                    created_at=self.clock.now(),
                ),
            )
            log.info("user created", extra={"action": "user_created", "user_id": user.id})
            return _view(user)

    def authenticate(self, email: str, password: str) -> UserView | None:
        """The user when the password matches; None otherwise (never says which part was wrong)."""
        with self.db.session() as s:
            user = store.user_by_email(s, email)
            if user is None or user.disabled_at is not None:
                _verify(_DUMMY_HASH, password)
                return None
            if not _verify(user.password_hash, password):
                log.info("sign-in refused", extra={"action": "signin_refused", "user_id": user.id})
                return None
            if _HASHER.check_needs_rehash(user.password_hash):
                user.password_hash = _HASHER.hash(password)
            user.last_login_at = self.clock.now()
            return _view(user)

    def user(self, user_id: int) -> UserView | None:
        """The user behind a session, unless removed or disabled since."""
        with self.db.session() as s:
            user = store.user(s, user_id)
            if user is None or user.disabled_at is not None:
                return None
            return _view(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _view(user: User) -> UserView:
    return UserView(id=user.id, email=user.email, role=Role(user.role))
