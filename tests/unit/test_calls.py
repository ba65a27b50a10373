"""Calls in the domain and their signed links: voices, who answered, redials, fallback orders,
and TwiML tokens that name only a delivery and expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.calls import CallLinks
from notifier.channels import specs
from notifier.domain.calls import Redial, Voice, answered_by, parse_voices
from notifier.domain.channels import parse_fallback
from notifier.errors import ValidationError

NOW = datetime(2025, 2, 18, 23, 0, tzinfo=UTC)
SECRET = "kF3v9QmZt0r1xYpL2wHs8uNcJd6Ea5Bg-Tz4"


def test_urgency_lifts_quiet_hours_for_texts_but_never_for_calls() -> None:
    assert specs()["sms"].urgency(None) is None and specs()["sms"].urgency(True) is True
    assert specs()["voice"].urgency(None) is False and specs()["voice"].urgency(True) is False


def test_a_link_names_its_delivery_until_it_expires() -> None:
    links = CallLinks(SECRET)
    token = links.make(42, NOW + timedelta(minutes=60))
    assert links.read(token, NOW) == 42
    assert links.read(token, NOW + timedelta(minutes=60)) == 42
    assert links.read(token, NOW + timedelta(minutes=61)) is None
    assert CallLinks("another-key-entirely-0123456789-abcdef").read(token, NOW) is None
    assert links.read(token[:-2] + ("A" if token[-1] != "A" else "B") + token[-1], NOW) is None
    assert links.read("not-a-token", NOW) is None


def test_voices_per_language() -> None:
    assert parse_voices("en=en-US:Polly.Joanna, es=es-US:Polly.Lupe") == {
        "en": Voice("en-US", "Polly.Joanna"),
        "es": Voice("es-US", "Polly.Lupe"),
    }
    for bad in ("", "en=Polly.Joanna", "en-US:Polly.Joanna", "=en-US:x"):
        with pytest.raises(ValidationError, match="voice"):
            parse_voices(bad)


@pytest.mark.parametrize(
    ("verdict", "who"),
    [
        ("human", "human"),
        ("machine_end_beep", "machine"),
        ("machine_end_silence", "machine"),
        ("machine_start", "machine"),
        ("fax", "machine"),
        ("unknown", "unknown"),
        ("", "unknown"),
    ],
)
def test_who_answered(verdict: str, who: str) -> None:
    assert answered_by(verdict) == who


def test_a_redial_policy_counts_the_first_call() -> None:
    twice = Redial(2, timedelta(minutes=15))
    assert [twice.allows(calls) for calls in (1, 2, 3)] == [True, True, False]
    assert not Redial(0, timedelta(minutes=15)).allows(1)


def test_fallback_orders_and_what_each_channel_lets_another_cure() -> None:
    known = specs()
    assert parse_fallback("SMS > voice > email", known) == ("sms", "voice", "email")
    sms, email, voice = known["sms"], known["email"], known["voice"]
    assert sms.cures("21614") and sms.cures("30006") and not sms.cures("21211")
    assert email.cures("550") and email.cures("554") and not email.cures("451")
    assert not voice.cures("busy") and not sms.cures(None)


def test_voice_is_a_channel_of_its_own() -> None:
    voice = specs()["voice"]
    assert (voice.consent_field, voice.csv_column, voice.csv_required) == (
        "voice_consent",
        "voice_consent",
        False,
    )
    assert voice.rate_variable == "NOTIFIER_VOICE_CALLS_PER_SECOND"
    assert voice.quiet_hours and not voice.weekly_cap and not voice.by_default
