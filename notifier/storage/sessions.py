"""Console sessions and sign-in attempts."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from notifier.storage.models import ConsoleSession, SignInAttempt, User
from notifier.storage.rows import changed

COUNTED = ("pending", "failed")  # an attempt still being checked counts as a failure


def lock_sign_ins_from(s: Session, ip: str) -> None:
    """Serialise the sign-in attempts from ``ip`` until this transaction ends, so concurrent
    guesses are counted one after another. SQLite needs nothing: every transaction begins with
    the write lock (BEGIN IMMEDIATE). PostgreSQL: a transaction-scoped advisory lock on the
    address (both limits are keyed by it)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(ip)})


def _lock_key(ip: str) -> int:
    digest = hashlib.sha256(b"notifier.sign_in:" + ip.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def counted_failures(
    s: Session, ip: str, account: str, since: datetime
) -> tuple[list[datetime], list[datetime]]:
    """The failures from ``ip`` since ``since``, oldest first: those for ``account`` after its
    last success from there, and those for any account."""
    rows = s.execute(
        select(SignInAttempt.id, SignInAttempt.at, SignInAttempt.account)
        .where(
            SignInAttempt.ip == ip,
            SignInAttempt.at > since,
            SignInAttempt.outcome.in_(COUNTED),
        )
        .order_by(SignInAttempt.at, SignInAttempt.id)
    ).all()
    last_success = s.scalar(
        select(func.max(SignInAttempt.id)).where(
            SignInAttempt.ip == ip,
            SignInAttempt.account == account,
            SignInAttempt.outcome == "succeeded",
            SignInAttempt.at > since,
        )
    )
    for_account = [r.at for r in rows if r.account == account and r.id > (last_success or 0)]
    return for_account, [r.at for r in rows]


def add_attempt(s: Session, ip: str, account: str, now: datetime) -> int:
    attempt = SignInAttempt(at=now, ip=ip, account=account, outcome="pending")
    s.add(attempt)
    s.flush()
    return attempt.id


def finish_attempt(s: Session, attempt_id: int, outcome: str) -> None:
    s.execute(update(SignInAttempt).where(SignInAttempt.id == attempt_id).values(outcome=outcome))


def forget_attempts_before(s: Session, cutoff: datetime) -> None:
    s.execute(delete(SignInAttempt).where(SignInAttempt.at < cutoff))


def add_session(
    s: Session, token_sha256: str, user_id: int, csrf: str, now: datetime
) -> ConsoleSession:
    row = ConsoleSession(
        token_sha256=token_sha256, user_id=user_id, csrf=csrf, created_at=now, last_seen_at=now
    )
    s.add(row)
    s.flush()
    return row


def session_by_hash(s: Session, token_sha256: str) -> tuple[ConsoleSession, User] | None:
    """A session not yet ended, with its user."""
    found = s.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_sha256 == token_sha256, ConsoleSession.ended_at.is_(None))
    ).first()
    return (found[0], found[1]) if found else None


def end_session(s: Session, token_sha256: str, now: datetime, because: str) -> None:
    s.execute(
        update(ConsoleSession)
        .where(ConsoleSession.token_sha256 == token_sha256, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now, ended_because=because)
    )


def end_sessions_of(s: Session, user_id: int, now: datetime, because: str) -> int:
    """End every open session of a user; how many there were."""
    return changed(
        s,
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now, ended_because=because),
    )


def forget_sessions_before(s: Session, cutoff: datetime) -> None:
    s.execute(delete(ConsoleSession).where(ConsoleSession.created_at < cutoff))
