"""Who is acting: a console user, an API token, or the operator at the command line.

A personal API token (made with ``--user EMAIL``) acts as its user: the actor is that USER, with
``token_id`` saying which token was used, so the audit trail and a notice's history name both.

Every use case that reads or changes clinic data takes an ``Actor`` and decides from it alone what
may be seen and done; adapters (CLI, API, console) only say who is acting. Pure: no storage, no web.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # every location, users and tokens
    MANAGER = "manager"  # creates and cancels notices, imports patients, in their locations
    VIEWER = "viewer"  # reads notices and delivery logs of their locations


class ActorKind(StrEnum):
    OPERATOR = "operator"  # the command line without --as: whoever runs the installation
    USER = "user"  # a console user (also the CLI with --as EMAIL, and a personal API token)
    TOKEN = "token"  # a service API bearer token, acting as itself


@dataclass(frozen=True)
class Actor:
    """The acting person or token. ``locations`` holds location ids; ``None`` means every
    location (admins, the operator, and users and tokens made before scopes existed)."""

    kind: ActorKind
    id: int | None  # the user's or token's id; None for the operator
    name: str  # the user's email or the token's name; "operator" for the command line
    role: Role
    locations: frozenset[int] | None = None
    ip: str | None = None  # where the request came from (None at the command line)
    token_id: int | None = None  # the personal API token a user acts through
    token_sees_patients: bool = False  # the token (service or personal) may see patients

    @classmethod
    def operator(cls) -> Actor:
        return cls(ActorKind.OPERATOR, None, "operator", Role.ADMIN, None)

    @property
    def every_location(self) -> bool:
        return self.locations is None

    @property
    def can_manage(self) -> bool:
        return self.role in (Role.ADMIN, Role.MANAGER)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def sees_patients(self) -> bool:
        """Whether this actor may read patients' names and addresses (patient lists, the
        not-reached and affected-appointments exports, the delivery log with patients): the
        one check every use case that returns them makes. Admins, managers and the operator
        may; viewers may not; through an API token (a service token, or a user's personal
        one, whatever its scope) only if it was made with ``--sees-patients``, and a personal
        token only of a manager or admin (``Accounts.token_actor`` works that out)."""
        if self.kind is ActorKind.TOKEN or self.token_id is not None:
            return self.token_sees_patients
        return self.can_manage

    def sees(self, location_id: int) -> bool:
        return self.locations is None or location_id in self.locations

    def visible(self, location_ids: Iterable[int]) -> list[int]:
        """The subset of ``location_ids`` this actor may see, in the given order."""
        return [lid for lid in location_ids if self.sees(lid)]

    def at(self, ip: str | None) -> Actor:
        """The same actor, acting from ``ip`` (for the audit trail)."""
        return replace(self, ip=ip[:64] if ip else None)

    @property
    def label(self) -> str:
        """How the audit trail and the consent ledger name this actor: "user:3",
        "token:2", "operator" (never an email: ledgers name staff by id)."""
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @property
    def via(self) -> str | None:
        """The personal token a user acts through, as "token:5" (None: no token)."""
        return None if self.token_id is None else f"token:{self.token_id}"


def narrowed(
    user_locations: frozenset[int] | None, token_locations: frozenset[int] | None
) -> frozenset[int] | None:
    """Where a user's personal token may act: the user's locations, narrowed by the token's
    (None: every location)."""
    if user_locations is None:
        return token_locations
    if token_locations is None:
        return user_locations
    return user_locations & token_locations
