"""Who may use Notifier: console users (managers and viewers; argon2id hashes) and API bearer
tokens (shown once, stored only as a SHA-256 digest)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from notifier.domain.contacts import mask_email, normalize_email
from notifier.errors import ValidationError
from notifier.storage import accounts as account_rows
from notifier.storage.models import User
from notifier.usecases import UseCase

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "ntf_"
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


class Accounts(UseCase):
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
            if account_rows.user_by_email(s, address) is not None:
                raise ValidationError(f"a user {mask_email(address)} already exists")
            user = account_rows.add_user(
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
            user = account_rows.user_by_email(s, email)
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
            user = account_rows.user(s, user_id)
            if user is None or user.disabled_at is not None:
                return None
            return _view(user)

    def create_token(self, name: str) -> str:
        """A new random API token for ``name``; the caller shows it once, we keep its digest."""
        name = name.strip()
        if not name:
            raise ValidationError("give the token a name (who or what uses it)", "name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            account_rows.add_api_token(s, name[:100], token_digest(token), self.clock.now())
        return token

    def token_name(self, token: str) -> str | None:
        """The name of a live API token, or None."""
        with self.db.session() as s:
            found = account_rows.api_token_by_hash(s, token_digest(token))
            return found.name if found else None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _view(user: User) -> UserView:
    return UserView(id=user.id, email=user.email, role=Role(user.role))
