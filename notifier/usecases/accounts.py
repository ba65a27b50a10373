"""Who may use Notifier: console users (admins, managers and viewers; argon2id hashes; a
disabled user is out at once) and API bearer tokens (shown once, stored only as a SHA-256
digest, revocable), each scoped to locations (or every location), and the ``Actor`` each one
acts as. A service token acts as itself; a personal token (``user``) acts as its console user,
within the user's role and locations, so it can do what only a person may (approve a notice).
Every change is in the audit trail."""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from notifier.domain.actors import Actor, ActorKind, Role, narrowed
from notifier.domain.contacts import mask_email, normalize_email
from notifier.errors import NotFoundError, ValidationError
from notifier.storage import accounts as account_rows
from notifier.storage import locations as location_rows
from notifier.storage import sessions as session_rows
from notifier.storage.models import ApiToken, User
from notifier.usecases import UseCase
from notifier.usecases.audit import record

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "ntf_"
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so a wrong email costs as long as a wrong
    password. Made on first use: hashing costs ~0.1 s, which every CLI command would pay."""
    return _HASHER.hash("not a password of anyone's")


OPERATOR = Actor.operator()


class TokenScope(StrEnum):
    READ = "read"  # reads notices, the log, summaries
    SEND = "send"  # also creates, sends, cancels notices, imports, lifts opt-outs


@dataclass(frozen=True)
class UserView:
    id: int
    email: str
    role: Role
    locations: frozenset[int] | None = None  # None: every location

    @property
    def can_manage(self) -> bool:
        return self.actor().can_manage

    @property
    def sees_patients(self) -> bool:
        """Whether the console shows this user patients' names (``Actor.sees_patients``)."""
        return self.actor().sees_patients

    def actor(self, ip: str | None = None) -> Actor:
        """This user as the actor of a request from ``ip``."""
        return Actor(ActorKind.USER, self.id, self.email, self.role, self.locations, ip)


@dataclass(frozen=True)
class UserListing:
    id: int
    email: str
    role: str
    status: str  # active, disabled
    created: str
    last_sign_in: str | None
    locations: str  # "all" or the slugs, comma-separated


@dataclass(frozen=True)
class TokenListing:
    id: int
    name: str
    status: str  # live, revoked
    created: str
    revoked: str | None
    scope: str = TokenScope.SEND.value
    locations: str = "all"
    user: str | None = None  # a personal token's console user (None: a service token)


class Accounts(UseCase):
    def create_user(
        self,
        email: str,
        role: str,
        password: str,
        locations: Sequence[str] | None = None,
        *,
        actor: Actor = OPERATOR,
    ) -> UserView:
        """A new console user, of ``locations`` (slugs; None or an admin: every location)."""
        _require_admin(actor)
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
            scoped = None if chosen is Role.ADMIN else _location_ids(s, locations)
            account_rows.set_user_locations(s, user, scoped)
            record(s, actor, "user_create", self.clock.now(), f"user:{user.id}")
            log.info("user created", extra={"action": "user_created", "user_id": user.id})
            return user_view(s, user)

    def authenticate(self, email: str, password: str) -> UserView | None:
        """The user when the password matches; None otherwise (never says which part was wrong).

        The hash is checked outside any transaction: argon2id takes tens of milliseconds and
        64 MiB, and on SQLite a transaction holds the write lock all along."""
        with self.db.session() as s:
            # NUL is in no stored email, and PostgreSQL refuses it in a query: no such user.
            user = account_rows.user_by_email(s, email) if "\x00" not in email else None
            found = None if user is None or user.disabled_at is not None else user_view(s, user)
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
            return user_view(s, user)

    def create_token(
        self,
        name: str,
        sees_patients: bool = False,
        locations: Sequence[str] | None = None,
        scope: str = TokenScope.SEND.value,
        user: str | None = None,
        *,
        actor: Actor = OPERATOR,
    ) -> str:
        """A new random API token for ``name``; the caller shows it once, we keep its digest.
        ``sees_patients``: it may read patients' names and addresses (not-reached lists);
        ``locations``: the slugs it may see (None: every location); ``scope``: read or send;
        ``user``: the email of the active console user a personal token acts as (None: a
        service token), whose locations it may narrow but never widen."""
        _require_admin(actor)
        name = name.strip()
        if not name:
            raise ValidationError("give the token a name (who or what uses it)", "name")
        try:
            chosen = TokenScope(scope)
        except ValueError:
            raise ValidationError(
                f"scope {scope!r} is not one of {', '.join(t.value for t in TokenScope)}", "scope"
            ) from None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as s:
            now = self.clock.now()
            location_ids = _location_ids(s, locations)
            person = None if user is None else _token_user(s, user, location_ids)
            if person is not None and sees_patients and not person.can_manage:
                raise ValidationError(
                    "a viewer sees no patient's data: a viewer's token cannot --sees-patients",
                    "sees_patients",
                )
            row = account_rows.add_api_token(
                s,
                name[:100],
                token_digest(token),
                now,
                sees_patients,
                chosen.value,
                location_ids,
                person.id if person else None,
            )
            record(s, actor, "token_create", now, f"token:{row.id}")
            log.info(
                "token created",
                extra={
                    "action": "token_created",
                    "token_id": row.id,
                    "user_id": person.id if person else None,
                },
            )
        return token

    def token_actor(self, token: str, ip: str | None = None) -> Actor | None:
        """The actor a live API token acts as, or None. A service ``send`` token of every
        location acts as an admin (as every token did before scopes), a ``send`` token of
        some locations as their manager, a ``read`` token as a viewer. A personal token acts
        as its user (None once the user is disabled), see ``_personal_actor``."""
        with self.db.session() as s:
            found = account_rows.api_token_by_hash(s, token_digest(token))
            if found is None:
                return None
            locations = account_rows.token_location_ids(s, found)
            if found.user_id is not None:
                return _personal_actor(s, found, found.user_id, locations, ip)
            if found.scope == TokenScope.READ:
                role = Role.VIEWER
            else:
                role = Role.ADMIN if locations is None else Role.MANAGER
            patients = bool(found.sees_patients)
            return Actor(
                ActorKind.TOKEN,
                found.id,
                found.name,
                role,
                locations,
                ip,
                token_sees_patients=patients,
            )

    def actor_for_email(self, email: str) -> Actor:
        """The actor a live console user is (the CLI's ``--as EMAIL``); NotFoundError for an
        unknown or disabled user."""
        with self.db.session() as s:
            user = account_rows.user_by_email(s, email) if "\x00" not in email else None
            if user is None or user.disabled_at is not None:
                raise NotFoundError(f"no active user {mask_email(email.strip())}", "email")
            return user_view(s, user).actor()

    def token_sees_patients(self, token: str) -> bool:
        """Whether a live API token may read patients' names and addresses: the actor it
        acts as ``sees_patients``."""
        actor = self.token_actor(token)
        return actor is not None and actor.sees_patients

    def users(self, *, actor: Actor = OPERATOR) -> list[UserListing]:
        """Every console user with their role and locations (admins only)."""
        _require_admin(actor)
        with self.db.session() as s:
            return [_listing(s, user) for user in account_rows.all_users(s)]

    def disable_user(self, email: str, *, actor: Actor = OPERATOR) -> tuple[UserView, int]:
        """Disable a user and end their console sessions at once; how many were open."""
        _require_admin(actor)
        with self.db.session() as s:
            user = _existing_user(s, email)
            now = self.clock.now()
            user.disabled_at = user.disabled_at or now
            ended = session_rows.end_sessions_of(s, user.id, now, "user_disabled")
            record(s, actor, "user_disable", now, f"user:{user.id}")
            log.info("user disabled", extra={"action": "user_disabled", "user_id": user.id})
            return user_view(s, user), ended

    def enable_user(self, email: str, *, actor: Actor = OPERATOR) -> UserView:
        """Let a disabled user sign in again (their old sessions stay ended)."""
        _require_admin(actor)
        with self.db.session() as s:
            user = _existing_user(s, email)
            user.disabled_at = None
            record(s, actor, "user_enable", self.clock.now(), f"user:{user.id}")
            log.info("user enabled", extra={"action": "user_enabled", "user_id": user.id})
            return user_view(s, user)

    def tokens(self, *, actor: Actor = OPERATOR) -> list[TokenListing]:
        """Every API token, live or revoked (never the token itself)."""
        _require_admin(actor)
        with self.db.session() as s:
            return [_token_listing(s, token) for token in account_rows.api_tokens(s)]

    def revoke_token(
        self, name: str | None = None, token_id: int | None = None, *, actor: Actor = OPERATOR
    ) -> TokenListing:
        """Revoke one live token, by id or by a name only one live token has."""
        _require_admin(actor)
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
            record(s, actor, "token_revoke", found.revoked_at, f"token:{found.id}")
            log.info("token revoked", extra={"action": "token_revoked", "token_id": found.id})
            return _token_listing(s, found)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def user_view(s: Session, user: User) -> UserView:
    role = Role(user.role)
    locations = None if role is Role.ADMIN else account_rows.user_location_ids(s, user)
    return UserView(id=user.id, email=user.email, role=role, locations=locations)


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin or not actor.every_location:
        raise NotFoundError("users and tokens are for admins only")


def _token_user(s: Session, email: str, location_ids: frozenset[int] | None) -> UserView:
    """The active user a personal token is for; its locations must be among the user's."""
    found = account_rows.user_by_email(s, email) if "\x00" not in email else None
    if found is None or found.disabled_at is not None:
        raise NotFoundError(f"no active user {mask_email(email.strip())}", "user")
    person = user_view(s, found)
    if location_ids is not None and person.locations is not None:
        outside = location_ids - person.locations
        if outside:
            slugs = ", ".join(account_rows.location_slugs(s, frozenset(outside)) or ())
            raise ValidationError(
                f"{mask_email(person.email)} does not have these locations: {slugs}", "locations"
            )
    return person


def _personal_actor(
    s: Session,
    token: ApiToken,
    user_id: int,
    token_locations: frozenset[int] | None,
    ip: str | None,
) -> Actor | None:
    """The user a personal token acts as, or None when the user is disabled or gone. Their
    role and locations, narrowed by the token's locations; a ``read`` token acts as a viewer
    (it never writes), and an admin's token of some locations as their manager."""
    user = account_rows.user_by_id(s, user_id)
    if user is None or user.disabled_at is not None:
        return None
    person = user_view(s, user)
    locations = narrowed(person.locations, token_locations)
    role = person.role
    if token.scope == TokenScope.READ:
        role = Role.VIEWER
    elif role is Role.ADMIN and locations is not None:
        role = Role.MANAGER
    # Patients' data: the token's right, and only for a user who sees them in the console.
    patients = bool(token.sees_patients) and person.role is not Role.VIEWER
    return Actor(ActorKind.USER, person.id, person.email, role, locations, ip, token.id, patients)


def _location_ids(s: Session, slugs: Sequence[str] | None) -> frozenset[int] | None:
    """The ids of the locations named; None (every location) when none is named."""
    named = [slug.strip() for slug in slugs or () if slug.strip()]
    if not named:
        return None
    ids = []
    for slug in named:
        location = location_rows.location_by_slug(s, slug)
        if location is None:
            raise NotFoundError(f"no location {slug!r}", "locations")
        ids.append(location.id)
    return frozenset(ids)


def _slugs(s: Session, location_ids: frozenset[int] | None) -> str:
    slugs = account_rows.location_slugs(s, location_ids)
    return "all" if slugs is None else ",".join(slugs)


def _existing_user(s: Session, email: str) -> User:
    user = account_rows.user_by_email(s, email)
    if user is None:
        raise NotFoundError(f"no user {mask_email(email.strip())}", "email")
    return user


def _listing(s: Session, user: User) -> UserListing:
    return UserListing(
        id=user.id,
        email=user.email,
        role=user.role,
        status="disabled" if user.disabled_at else "active",
        created=user.created_at.isoformat(timespec="seconds"),
        last_sign_in=_iso(user.last_login_at),
        locations="all" if user.role == Role.ADMIN else _slugs(s, user_view(s, user).locations),
    )


def _token_listing(s: Session, token: ApiToken) -> TokenListing:
    return TokenListing(
        id=token.id,
        name=token.name,
        status="revoked" if token.revoked_at else "live",
        created=token.created_at.isoformat(timespec="seconds"),
        revoked=_iso(token.revoked_at),
        scope=token.scope,
        locations=_slugs(s, account_rows.token_location_ids(s, token)),
        user=_token_owner(s, token),
    )


def _token_owner(s: Session, token: ApiToken) -> str | None:
    user = None if token.user_id is None else account_rows.user_by_id(s, token.user_id)
    return user.email if user else None


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None
