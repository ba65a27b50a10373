from __future__ import annotations

from collections import Counter

import pytest

from notifier.domain.estimates import too_long_per_sender
from notifier.domain.senders import Sender, choose, parse_pool, share_out
from notifier.errors import ValidationError

PHONES = [f"+1540{2000000 + i}" for i in range(3000)]


def test_a_pool_is_read_with_rates_and_a_default() -> None:
    assert parse_pool("+15405550100=1, +18885550100=3,+15405550101", 10) == (
        Sender("+15405550100", 1.0),
        Sender("+18885550100", 3.0),
        Sender("+15405550101", 10.0),
    )


@pytest.mark.parametrize("text", ["", " , ", "+1540=fast", "+1540=0", "+1540=-2", "+1=1,+1=2"])
def test_a_bad_pool_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_pool(text, 10)


def test_a_patient_keeps_the_same_sender_and_the_load_follows_the_rates() -> None:
    pool = parse_pool("+15405550100=1,+18885550100=3", 10)
    first = {phone: choose(phone, pool) for phone in PHONES}
    assert all(choose(phone, pool) == first[phone] for phone in PHONES)  # every notice
    share = Counter(sender.address for sender in first.values())
    assert 0.70 < share["+18885550100"] / len(PHONES) < 0.80  # 3 of 4 by rate


def test_a_number_joining_the_pool_moves_only_the_patients_it_takes() -> None:
    before = parse_pool("+15405550100,+15405550101", 1)
    after = parse_pool("+15405550100,+15405550101,+15405550102", 1)
    moved = [p for p in PHONES if choose(p, before) != choose(p, after)]
    assert all(choose(p, after).address == "+15405550102" for p in moved)
    assert 0.25 < len(moved) / len(PHONES) < 0.42


def test_a_pool_shares_addresses_out_as_each_is_chosen_and_a_slow_sender_is_warned_alone() -> None:
    pool = (Sender("+15405550100", 1.0), Sender("+18885550100", 3.0))
    addresses = [f"+1540{2000000 + i}" for i in range(400)]
    shares = share_out(addresses, pool)
    assert shares == Counter(choose(a, pool) for a in addresses)
    assert sum(shares.values()) == 400 and 60 < shares[pool[0]] < 140  # about a quarter
    seconds = {"+15405550100": 7200.0, "+18885550100": 1800.0}
    [warning] = too_long_per_sender("sms", seconds, 3600.0, "NOTIFIER_TWILIO_FROM_NUMBERS")
    assert warning.startswith("sms from +15405550100: ") and "about 2.0 h" in warning
