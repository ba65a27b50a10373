"""The pure rules of the public feeds: calendar events, changed opening hours, CAP categories
and message types, and a chain's numbered messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from notifier.domain.closures import BusinessHours, Closure, zone
from notifier.domain.notices import Audience, Clinic, NoticeChange, NoticeFacts, ReasonCode
from notifier.domain.public import (
    CapCategory,
    MessageType,
    PublicNotice,
    PublicState,
    SpecialHours,
    StoredVersion,
    calendar_events,
    cap_category,
    published_versions,
    special_hours,
)

TZ = zone("America/New_York")
HOURS = BusinessHours.parse("Mon-Fri 08:00-17:00")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def closure(*spans: tuple[str, str]) -> Closure:
    return Closure.checked([(local(a), local(b)) for a, b in spans], TZ, HOURS)


def facts(c: Closure, change: NoticeChange = NoticeChange.ORIGINAL) -> NoticeFacts:
    return NoticeFacts(1, c, "ice", None, change, Audience.EVERYONE, Clinic("COVA", None, "en"))


def test_whole_days_across_a_weekend_make_one_all_day_event_per_interval() -> None:
    # Thursday noon through Tuesday's close, then a separate Wednesday-afternoon interval.
    c = closure(("2025-02-20 12:00", "2025-02-25 17:00"), ("2025-02-26 14:00", "2025-02-26 16:00"))
    events = calendar_events(c)
    assert [(e.key, e.all_day) for e in events] == [("0.0", False), ("0.1", True), ("1.0", False)]
    whole = events[1]
    assert (whole.first_day, whole.last_day, whole.end_date) == (
        date(2025, 2, 21),
        date(2025, 2, 25),
        date(2025, 2, 26),
    )
    assert events[2].starts == datetime(2025, 2, 26, 14, 0, tzinfo=TZ)


def test_special_hours_keep_what_stays_open() -> None:
    c = closure(("2025-02-19 12:30", "2025-02-21 10:00"), ("2025-02-24 11:00", "2025-02-24 13:00"))
    assert special_hours(c) == [
        SpecialHours(date(2025, 2, 19), time(8, 0), time(12, 30)),  # early close
        SpecialHours(date(2025, 2, 20)),  # closed all day: no opens
        SpecialHours(date(2025, 2, 21), time(10, 0), time(17, 0)),  # late opening
        SpecialHours(date(2025, 2, 24), time(8, 0), time(11, 0)),  # closed midday: both sides
        SpecialHours(date(2025, 2, 24), time(13, 0), time(17, 0)),
    ]


def test_cap_categories_by_reason_words_and_codes() -> None:
    assert cap_category("inclement weather") is CapCategory.MET
    assert cap_category("Snow storm.") is CapCategory.MET
    assert cap_category("a power outage") is CapCategory.INFRA
    assert cap_category("staff training") is CapCategory.HEALTH
    assert cap_category("anything", ReasonCode.POWER) is CapCategory.INFRA
    assert cap_category("a fire next door", ReasonCode.EMERGENCY) is CapCategory.SAFETY
    assert cap_category("the storm", ReasonCode.OTHER) is CapCategory.MET  # its words decide
    assert cap_category("", ReasonCode.STAFF) is CapCategory.HEALTH


def test_a_chain_makes_numbered_messages_and_a_cancel_in_place_adds_one() -> None:
    c = closure(("2025-02-20 08:00", "2025-02-20 17:00"))
    at = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)
    later = datetime(2025, 2, 19, 1, 0, tzinfo=UTC)
    first = StoredVersion(facts(c), at, at, withdrawn_in_place=False)
    second = StoredVersion(facts(c, NoticeChange.UPDATE), later, later, withdrawn_in_place=True)
    versions = published_versions([first, second])
    assert [(v.sequence, v.message_type) for v in versions] == [
        (0, MessageType.ALERT),
        (1, MessageType.UPDATE),
        (2, MessageType.CANCEL),
    ]
    notice = PublicNotice(1, versions, at)
    assert notice.state(at) is PublicState.CANCELLED
    told = StoredVersion(facts(c, NoticeChange.CANCELLATION), later, later, False)
    assert [v.message_type for v in published_versions([first, told])] == [
        MessageType.ALERT,
        MessageType.CANCEL,
    ]
    live = PublicNotice(1, published_versions([first]), at)
    assert live.state(at) is PublicState.UPCOMING
    assert live.state(datetime(2025, 2, 20, 9, 0, tzinfo=TZ)) is PublicState.CURRENT
    assert live.state(datetime(2025, 2, 20, 17, 0, tzinfo=TZ)) is PublicState.OVER
