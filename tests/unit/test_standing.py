"""What staff are told a notice is: table-driven, pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.domain.notices import (
    Action,
    BroadcastStatus,
    NoticeChange,
    NoticeKind,
    NoticeStatus,
    Period,
    standing,
)

STARTS = datetime(2025, 2, 19, 17, 30, tzinfo=UTC)
ENDS = datetime(2025, 2, 21, 5, 0, tzinfo=UTC)
BEFORE = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)
DURING = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
AFTER = datetime(2025, 2, 22, 12, 0, tzinfo=UTC)
A, C, S = NoticeStatus.ACTIVE, NoticeStatus.CANCELLED, NoticeStatus.SUPERSEDED
ORIG, U, X = NoticeChange.ORIGINAL, NoticeChange.UPDATE, NoticeChange.CANCELLATION
SCHEDULED, DONE = BroadcastStatus.SCHEDULED, BroadcastStatus.DONE
DRAFT, FAILED = BroadcastStatus.DRAFT, BroadcastStatus.FAILED
CL, EC = NoticeKind.CLOSURE, NoticeKind.EARLY_CLOSE


@pytest.mark.parametrize(
    ("status", "change", "kind", "broadcast", "followed", "now", "words", "period", "actions"),
    [
        (A, ORIG, CL, SCHEDULED, None, BEFORE, "upcoming closure", "upcoming", "uc"),
        (A, ORIG, CL, DONE, None, DURING, "closed now", "now", "uc"),
        (A, ORIG, EC, DONE, None, BEFORE, "upcoming early close", "upcoming", "uc"),
        (A, U, CL, DONE, None, BEFORE, "upcoming closure · updated", "upcoming", "uc"),
        (A, ORIG, CL, DONE, None, AFTER, "closure · over", "past", ""),
        (A, X, CL, DONE, None, BEFORE, "open after all · sent", "past", ""),
        (A, X, CL, SCHEDULED, None, BEFORE, "open after all · scheduled", "past", ""),
        (C, ORIG, CL, DONE, X, BEFORE, "cancelled · patients told", "past", ""),
        (C, ORIG, CL, SCHEDULED, None, BEFORE, "cancelled", "past", ""),
        (S, ORIG, CL, DONE, U, BEFORE, "replaced by a newer version", "past", ""),
        (A, ORIG, CL, DRAFT, None, BEFORE, "draft · upcoming closure",
         "upcoming", "suc"),
        (A, ORIG, CL, FAILED, None, BEFORE, "upcoming closure · broadcast failed",
         "upcoming", "ucr"),
    ],
)  # fmt: skip
def test_a_notice_is_named_and_listed_by_what_is_true(
    status: NoticeStatus,
    change: NoticeChange,
    kind: NoticeKind,
    broadcast: BroadcastStatus,
    followed: NoticeChange | None,
    now: datetime,
    words: str,
    period: str,
    actions: str,
) -> None:
    told = standing(status, change, kind, STARTS, ENDS, [broadcast], followed, now)
    assert told.words == words
    assert told.period is Period(period)
    letters = {"s": Action.SEND, "u": Action.UPDATE, "c": Action.CANCEL, "r": Action.RETRY}
    assert set(told.actions) == {letters[a] for a in actions}
