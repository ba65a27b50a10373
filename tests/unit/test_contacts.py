from __future__ import annotations

import pytest

from notifier.domain.contacts import (
    display_phone,
    mask_email,
    mask_phone,
    normalize_email,
    normalize_phone,
)
from notifier.errors import ValidationError


@pytest.mark.parametrize(
    "raw", ["540-555-0111", "(540) 555-0111", "+1 540 555 0111", "1-540-555-0111"]
)
def test_us_numbers_normalise_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+15405550111"


@pytest.mark.parametrize("raw", ["12345", "not a phone", "+1 555", "540-555-01111111"])
def test_malformed_numbers_are_refused_without_echoing_them(raw: str) -> None:
    with pytest.raises(ValidationError, match="phone") as info:
        normalize_phone(raw)
    digits = "".join(ch for ch in raw if ch.isdigit())
    if len(digits) > 4:  # the full number never reaches an error message (it may be logged)
        assert digits not in "".join(ch for ch in str(info.value) if ch.isdigit())


def test_email_is_normalised_and_bad_email_refused() -> None:
    assert normalize_email(" Maria@Example.ORG ") == "Maria@example.org"
    with pytest.raises(ValidationError, match="is not valid"):
        normalize_email("maria@@example")


def test_masks_keep_only_what_ops_need() -> None:
    assert mask_phone("+15405550111") == "+1******0111"
    assert mask_email("maria.lopez@example.org") == "m***@example.org"
    assert display_phone("+15405550100") == "(540) 555-0100"
