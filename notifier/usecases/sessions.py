"""Console sessions kept in the database, and sign-in limited per client address.

The browser's cookie carries a random session id; the database keeps only its SHA-256, beside
the session's CSRF token. A session ends at sign-out, after ``NOTIFIER_CONSOLE_IDLE_MINUTES``
without a request, ``NOTIFIER_CONSOLE_SESSION_HOURS`` after sign-in, as soon as its user is
disabled, and when the same browser signs in again (a new id each time).

A sign-in attempt is written (``pending``) in the transaction that counts the failures before
it, under a lock on the client's address, and only then is the password checked: concurrent
guesses queue at the lock and each sees the ones before it, on SQLite and PostgreSQL alike. The
limits are in ``domain.sign_in``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta

from notifier.domain.actors import Actor, ActorKind, Role
from notifier.domain.sign_in import SessionTimes, SignInLimits
from notifier.storage import sessions as session_rows
from notifier.usecases import Deps, UseCase
from notifier.usecases.accounts import Accounts, UserView, token_digest, user_view
from notifier.usecases.audit import record

log = logging.getLogger(__name__)
# Whoever typed an email and password that matched nobody (or the wrong password).
_UNKNOWN = Actor(ActorKind.USER, None, "unknown", Role.VIEWER, frozenset())
TOUCH_EVERY = timedelta(minutes=1)  # how stale a session's last-seen time may be (fewer writes)
KEEP_HISTORY = timedelta(days=7)  # ended sessions and old attempts, for a look after an incident
CHECK_QUEUE_SECONDS = 3.0  # how long a sign-in waits for a free password-check slot


@dataclass(frozen=True)
class LiveSession:
    user: UserView
    csrf: str


@dataclass(frozen=True)
class NewSession:
    user: UserView
    token: str  # the new session id, for the cookie only
    csrf: str


@dataclass(frozen=True)
class Refused:
    """The email and password do not match a user who may sign in."""


@dataclass(frozen=True)
class Throttled:
    wait: timedelta


@dataclass(frozen=True)
class Busy:
    """Every password-check slot was taken for ``CHECK_QUEUE_SECONDS``: try again shortly (not
    counted as a failure)."""

    retry_after_seconds: int = 2


class Sessions(UseCase):
    def __init__(self, deps: Deps, accounts: Accounts) -> None:
        super().__init__(deps)
        self.accounts = accounts
        # argon2id takes 64 MiB per check: a burst of guesses must not take the server's memory.
        self.checks = threading.BoundedSemaphore(self.settings.sign_in_checks_at_once)

    @property
    def limits(self) -> SignInLimits:
        return SignInLimits(
            per_account=self.settings.sign_in_failures_per_account,
            per_address=self.settings.sign_in_failures_per_ip,
            window=timedelta(minutes=self.settings.sign_in_window_minutes),
        )

    @property
    def times(self) -> SessionTimes:
        return SessionTimes(
            idle=timedelta(minutes=self.settings.console_idle_minutes),
            lifetime=timedelta(hours=self.settings.console_session_hours),
        )

    def sign_in(
        self, email: str, password: str, ip: str, replacing: str | None = None
    ) -> NewSession | Refused | Throttled | Busy:
        """Check a password from ``ip`` unless that address must wait; on success a new session
        (and the browser's previous one, ``replacing``, ends)."""
        limits, now = self.limits, self.clock.now()
        account = token_digest(email.strip().lower())
        ip = ip[:64]
        with self.db.session() as s:
            session_rows.lock_sign_ins_from(s, ip)
            for_account, for_address = session_rows.counted_failures(
                s, ip, account, now - limits.window
            )
            wait = limits.wait(for_account, for_address, now)
            if wait is not None:
                log.warning("sign-in throttled", extra={"action": "signin_throttled", "ip": ip})
                return Throttled(wait)
            attempt = session_rows.add_attempt(s, ip, account, now)
            session_rows.forget_attempts_before(s, now - max(limits.window, KEEP_HISTORY))
        if not self.checks.acquire(timeout=CHECK_QUEUE_SECONDS):
            with self.db.session() as s:
                session_rows.finish_attempt(s, attempt, "busy")
            log.warning(
                "sign-in refused: every password check busy", extra={"action": "signin_busy"}
            )
            return Busy()
        user = None
        try:
            user = self.accounts.authenticate(email, password)
        finally:  # whatever happened, the attempt is not left pending
            self.checks.release()
            with self.db.session() as s:
                session_rows.finish_attempt(s, attempt, "failed" if user is None else "succeeded")
        if user is None:
            with self.db.session() as s:  # who failed is not known: the address is
                record(s, _UNKNOWN.at(ip), "signin_failed", self.clock.now(), outcome="refused")
            return Refused()
        with self.db.session() as s:
            now = self.clock.now()
            record(s, user.actor(ip), "signin", now, f"user:{user.id}")
            if replacing:
                session_rows.end_session(s, token_digest(replacing), now, "replaced")
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            session_rows.add_session(s, token_digest(token), user.id, csrf, now)
            session_rows.forget_sessions_before(s, now - self.times.lifetime - KEEP_HISTORY)
            log.info("signed in", extra={"action": "signed_in", "user_id": user.id})
            return NewSession(user, token, csrf)

    def current(self, token: str) -> LiveSession | None:
        """The live session behind a cookie, or None; a request keeps it from going idle."""
        now = self.clock.now()
        with self.db.session() as s:
            found = session_rows.session_by_hash(s, token_digest(token))
            if found is None:
                return None
            row, user = found
            ended = None
            if user.disabled_at is not None:
                ended = "user_disabled"
            elif not self.times.live(row.created_at, row.last_seen_at, now):
                ended = "expired"
            if ended:
                row.ended_at, row.ended_because = now, ended
                return None
            if now - row.last_seen_at >= TOUCH_EVERY:
                row.last_seen_at = now
            return LiveSession(user_view(s, user), row.csrf)

    def sign_out(self, token: str) -> None:
        with self.db.session() as s:
            session_rows.end_session(s, token_digest(token), self.clock.now(), "signed_out")
