"""Who may use Notifier: console users (managers and viewers; argon2id hashes; a disabled user
is out at once) and API bearer tokens (shown once, stored only as a SHA-256 digest, revocable)."""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from notifier.domain.actors import Actor, ActorKind, Role
from notifier.domain.contacts import mask_email, normalize_email
from notifier.errors import NotFoundError, ValidationError
from notifier.storage import accounts as account_rows
from notifier.storage import sessions as session_rows
from notifier.storage.models import ApiToken, User
from notifier.usecases import UseCase

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "ntf_"
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as long as a wrong
    password. Made on first use: hashing costs ~0.1 s, which every CLI command would pay."""
    return _HASHER.hash("not a password of anyone's")


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    role: Role

    @property
    def can_manage(self) -> bool:
        return self.role in (Role.ADMIN, Role.MANAGER)


@dataclass(frozen=True)
class UserListing:
    id: int
    email: str
    role: str
    status: str  # active, disabled
    created: str
    last_sign_in: str | None


@dataclass(frozen=True)
class TokenListing:
    id: int
    name: str
    status: str  # live, revoked
    created: str
    revoked: str | None


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
        password_hash = _HASHER.hash(password)  # before the transaction: 64 MiB, CPU-heavy
        exists = ValidationError(f"a user {mask_email(address)} already exists")
        with self.db.session() as s:
            if account_rows.user_by_email(s, address) is not None:  # any case of the address
                raise exists
            if not account_rows.add_user(s, address, chosen.value, password_hash, self.clock.now()):
                raise exists  # created meanwhile by another command
            user = account_rows.user_by_email(s, address)
            assert user is not None
            log.info("user created", extra={"action": "user_created", "user_id": user.id})
            return user_view(user)

    def authenticate(self, email: str, password: str) -> UserView | None:
        """The user when the password matches; None otherwise (never says which part was wrong).

        The hash is checked outside any transaction: argon2id takes tens of milliseconds and
        64 MiB, and on SQLite a transaction holds the write lock all along."""
        with self.db.session() as s:
            # NUL is in no stored email, and PostgreSQL refuses it in a query: no such user.
            user = account_rows.user_by_email(s, email) if "\x00" not in email else None
            found = None if user is None or user.disabled_at is not None else user_view(user)
            stored = user.password_hash if user is not None and found is not None else None
        if found is None or stored is None:
            _verify(_dummy_hash(), password)
            return None
        if not _verify(stored, password):
            log.info("sign-in refused", extra={"action": "signin_refused", "user_id": found.id})
            return None
        rehashed = _HASHER.hash(password) if _HASHER.check_needs_rehash(stored) else None
        with self.db.session() as s:
            user = account_rows.user_by_id(s, found.id)
            if user is None or user.disabled_at is not None:  # removed or disabled meanwhile
                return None
            if rehashed is not None and user.password_hash == stored:
                user.password_hash = rehashed
            user.last_login_at = self.clock.now()
            return user_view(user)

    def create_token(self, name: str, sees_patients: bool = False) -> str:
        """A new random API token for ``name``; the caller shows it once, we keep its digest.
        ``sees_patients``: it may read patients' names and addresses (not-reached lists)."""
        name = name.strip()
        if not name:
            raise ValidationError("give the token a name (who or what uses it)", "name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            account_rows.add_api_token(
                s, name[:100], token_digest(token), self.clock.now(), sees_patients
            )
        return token

    def actor_for_email(self, email: str) -> Actor:
        """The console user named by ``email`` as the acting person (the CLI's ``--as``);
        NotFoundError for an unknown or disabled user."""
        with self.db.session() as s:
            user = account_rows.user_by_email(s, email) if "\x00" not in email else None
            if user is None or user.disabled_at is not None:
                raise NotFoundError(f"no active user {mask_email(email.strip())}", "as")
            return Actor(ActorKind.USER, user.id, user.email, Role(user.role), None)

    def token_sees_patients(self, token: str) -> bool:
        """Whether a live API token may read patients' names and addresses."""
        with self.db.session() as s:
            found = account_rows.api_token_by_hash(s, token_digest(token))
            return bool(found and found.sees_patients)

    def token_name(self, token: str) -> str | None:
        """The name of a live API token, or None."""
        with self.db.session() as s:
            found = account_rows.api_token_by_hash(s, token_digest(token))
            return found.name if found else None

    def users(self) -> list[UserListing]:
        with self.db.session() as s:
            return [_listing(user) for user in account_rows.all_users(s)]

    def disable_user(self, email: str) -> tuple[UserView, int]:
        """Disable a user and end their console sessions at once; how many were open."""
        with self.db.session() as s:
            user = _existing_user(s, email)
            now = self.clock.now()
            user.disabled_at = user.disabled_at or now
            ended = session_rows.end_sessions_of(s, user.id, now, "user_disabled")
            log.info("user disabled", extra={"action": "user_disabled", "user_id": user.id})
            return user_view(user), ended

    def enable_user(self, email: str) -> UserView:
        """Let a disabled user sign in again (their old sessions stay ended)."""
        with self.db.session() as s:
            user = _existing_user(s, email)
            user.disabled_at = None
            log.info("user enabled", extra={"action": "user_enabled", "user_id": user.id})
            return user_view(user)

    def tokens(self) -> list[TokenListing]:
        """Every API token, live or revoked (never the token itself)."""
        with self.db.session() as s:
            return [_token_listing(token) for token in account_rows.api_tokens(s)]

    def revoke_token(self, name: str | None = None, token_id: int | None = None) -> TokenListing:
        """Revoke one live token, by id or by a name only one live token has."""
        with self.db.session() as s:
            if token_id is not None:
                found = account_rows.api_token(s, token_id)
                if found is None or found.revoked_at is not None:
                    raise NotFoundError(f"no live token with id {token_id}", "id")
            elif name is not None:
                named = account_rows.live_tokens_named(s, name.strip())
                if not named:
                    raise NotFoundError(f"no live token named {name!r}", "name")
                if len(named) > 1:
                    ids = ", ".join(str(t.id) for t in named)
                    raise ValidationError(
                        f"{len(named)} live tokens are named {name!r} (ids {ids}): "
                        "revoke one with --id",
                        "name",
                    )
                found = named[0]
            else:
                raise ValidationError("say which token: --name or --id", "name")
            found.revoked_at = self.clock.now()
            log.info("token revoked", extra={"action": "token_revoked", "token_id": found.id})
            return _token_listing(found)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def user_view(user: User) -> UserView:
    return UserView(id=user.id, email=user.email, role=Role(user.role))


def _existing_user(s: Session, email: str) -> User:
    user = account_rows.user_by_email(s, email)
    if user is None:
        raise NotFoundError(f"no user {mask_email(email.strip())}", "email")
    return user


def _listing(user: User) -> UserListing:
    return UserListing(
        id=user.id,
        email=user.email,
        role=user.role,
        status="disabled" if user.disabled_at else "active",
        created=user.created_at.isoformat(timespec="seconds"),
        last_sign_in=_iso(user.last_login_at),
    )


def _token_listing(token: ApiToken) -> TokenListing:
    return TokenListing(
        id=token.id,
        name=token.name,
        status="revoked" if token.revoked_at else "live",
        created=token.created_at.isoformat(timespec="seconds"),
        revoked=_iso(token.revoked_at),
    )


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None
