"""Quiet hours in the dispatcher: texts at night wait for the morning unless urgent."""

from __future__ import annotations

from datetime import datetime

import pytest

from notifier.bootstrap import App
from notifier.clock import FrozenClock
from notifier.storage import deliveries as delivery_rows
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.peers import NEW_YORK
from tests.support.records import events
from tests.support.web import add_cova, broadcast_email, broadcast_sms


@pytest.fixture
def night(app: App, clock: FrozenClock) -> App:
    add_cova(app)
    clock.set(datetime(2025, 2, 18, 22, 0, tzinfo=NEW_YORK))
    return app


def test_a_text_at_22_00_is_deferred_to_08_00_local_then_sent(
    night: App, clock: FrozenClock
) -> None:
    channel = FakeChannel()
    notice_id = broadcast_sms(night, channel)
    assert channel.sent == []
    pending = night.deliveries.log(OPERATOR, notice_id, "pending")
    assert len(pending) == 2
    with night.db.session() as s:
        rows = [delivery_rows.deliveries_with_context(s, [d.id])[0] for d in pending]
        assert {r.next_attempt_at.astimezone(NEW_YORK) for r in rows} == {
            datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK)
        }
        assert all(r.attempts == 0 for r in rows)
    assert events(night, pending[0].id)[-1][:2] == ("deferred_quiet_hours", "pending")

    clock.set(datetime(2025, 2, 19, 7, 59, tzinfo=NEW_YORK))
    broadcast_again = FakeChannel()
    night.dispatcher({"sms": broadcast_again}).drain()
    assert broadcast_again.sent == []
    clock.set(datetime(2025, 2, 19, 8, 0, tzinfo=NEW_YORK))
    night.dispatcher({"sms": broadcast_again}).drain()
    assert len(broadcast_again.sent) == 2
    assert sorted(d.state for d in night.deliveries.log(OPERATOR, notice_id, channel="sms")) == [
        "sent",
        "sent",
        "skipped",
        "skipped",
    ]


def test_an_urgent_broadcast_is_sent_at_night(night: App) -> None:
    channel = FakeChannel()
    broadcast_sms(night, channel, urgent=True)
    assert len(channel.sent) == 2


def test_a_same_day_closure_is_urgent_by_default(night: App, clock: FrozenClock) -> None:
    clock.set(datetime(2025, 2, 19, 6, 30, tzinfo=NEW_YORK))
    channel = FakeChannel()
    broadcast_sms(night, channel)
    assert len(channel.sent) == 2


def test_not_urgent_wins_over_the_same_day_default(night: App, clock: FrozenClock) -> None:
    clock.set(datetime(2025, 2, 19, 6, 30, tzinfo=NEW_YORK))
    channel = FakeChannel()
    notice_id = broadcast_sms(night, channel, urgent=False)
    assert channel.sent == []
    assert len(night.deliveries.log(OPERATOR, notice_id, "pending")) == 2


def test_a_closure_over_before_the_window_opens_expires(night: App) -> None:
    night.locations.save(
        OPERATOR, "cova", "COVA Spine and Pain Center", "America/New_York", "Mon-Fri 06:00-17:00"
    )
    channel = FakeChannel()
    notice_id = broadcast_sms(
        night, channel, starts="2025-02-19 06:00", ends="2025-02-19 07:30", urgent=False
    )
    assert channel.sent == []
    expired = night.deliveries.log(OPERATOR, notice_id, "expired")
    assert len(expired) == 2 and all("quiet hours" in (d.error or "") for d in expired)


def test_email_is_not_held_by_quiet_hours(night: App) -> None:
    notice_id = broadcast_email(night)
    assert len(night.deliveries.log(OPERATOR, notice_id, "sent")) == 3
