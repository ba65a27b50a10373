"""API bearer tokens: shown once at creation, stored only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import secrets

from notifier import store
from notifier.clock import Clock
from notifier.db import Database
from notifier.errors import ValidationError

PREFIX = "ntf_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(db: Database, clock: Clock, name: str) -> str:
    """A new random token for ``name``; the caller shows it once, we keep only its digest."""
    name = name.strip()
    if not name:
        raise ValidationError("give the token a name (who or what uses it)")
    token = PREFIX + secrets.token_urlsafe(32)
    with db.session() as s:
        store.add_api_token(s, name[:100], digest(token), clock.now())
    return token


def token_name(db: Database, token: str) -> str | None:
    """The name of a live token, or None."""
    with db.session() as s:
        found = store.api_token_by_hash(s, digest(token))
        return found.name if found else None
