"""How many wrong passwords a client gets, and how long a console session lives.

Failures are counted in two buckets, both keyed by the client's address: one per (account,
address) and one per address whatever the account. Nothing counts per account alone, so a
stranger guessing a manager's password locks out only the stranger's own address, never the
manager signing in from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SignInLimits:
    per_account: int  # failures for one account from one address in a window
    per_address: int  # failures from one address, any accounts, in a window
    window: timedelta

    def wait(
        self,
        account_failures: Sequence[datetime],
        address_failures: Sequence[datetime],
        now: datetime,
    ) -> timedelta | None:
        """How long this client must wait before its next try, or None. Each sequence holds the
        counted failures (oldest first) inside the window."""
        waits = [
            _until_free(account_failures, self.per_account, self.window, now),
            _until_free(address_failures, self.per_address, self.window, now),
        ]
        return max((w for w in waits if w is not None), default=None)


def _until_free(
    failures: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> timedelta | None:
    """A bucket with ``limit`` or more failures frees a slot when enough of its oldest expire."""
    if len(failures) < limit:
        return None
    frees_at = sorted(failures)[len(failures) - limit] + window
    return max(frees_at - now, timedelta(0)) or None


@dataclass(frozen=True)
class SessionTimes:
    idle: timedelta  # no request for this long ends the session
    lifetime: timedelta  # and no session outlives this, however busy

    def live(self, started: datetime, last_seen: datetime, now: datetime) -> bool:
        return now - last_seen < self.idle and now - started < self.lifetime
