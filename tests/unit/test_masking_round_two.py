"""What masking used to miss: a number beside a date, fullwidth characters, and a database
server's own words in a log line or traceback. A property test embeds any phone or email in
random text."""

from __future__ import annotations

import logging
import re
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifier.domain.contacts import mask_text
from notifier.logs import KeyValueFormatter, scrub

PG_UNIQUE = (
    'duplicate key value violates unique constraint "uq_opt_outs_channel"\n'
    "DETAIL:  Key (channel, address)=(sms, +15405550111) already exists."
)
PG_NOT_NULL = (
    'null value in column "last_name" of relation "patients" violates not-null constraint\n'
    "DETAIL:  Failing row contains (7, p7, Maria, null, +15405550111, m@example.org, en)."
)


def test_a_number_beside_a_date_is_masked_and_the_date_kept() -> None:
    assert mask_text("5405550121 2027-01-06") == "******0121 2027-01-06"
    assert mask_text("+15405550121 (2027-01-06)") == "+1******0121 (2027-01-06)"
    assert mask_text("2027-01-06 540-555-0121") == "2027-01-06 ******0121"
    assert mask_text("closed 2027-01-06 to 2027-01-08") == "closed 2027-01-06 to 2027-01-08"


def test_fullwidth_at_signs_and_digits_are_masked() -> None:
    assert mask_text("maria.lopez＠example.org") == "m***@example.org"
    assert mask_text("call ５４０５５５０１２１") == "call ******0121"


def test_a_postgres_detail_never_survives_scrubbing() -> None:
    for error in (PG_UNIQUE, PG_NOT_NULL):
        scrubbed = scrub(error)
        assert "5550111" not in scrubbed and "Maria" not in scrubbed and "m@ex" not in scrubbed
        assert scrubbed.splitlines()[0] == error.splitlines()[0]  # the constraint still named


def test_the_formatter_scrubs_messages_exceptions_and_stacks() -> None:
    formatter = KeyValueFormatter("%(message)s")
    try:
        raise RuntimeError(PG_NOT_NULL)
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "failed for %s", ("maria@example.org",), exc_info
    )
    record.stack_info = "Stack: +1 540 555 0111"
    line = formatter.format(record)
    assert "maria@" not in line and "5550111" not in line and "555 0111" not in line
    assert "m***@example.org" in line and "RuntimeError" in line


# --- any phone or email, embedded in random text ------------------------------------------------

_AREA = st.integers(200, 989).filter(lambda n: n % 100 != 11)
_LINE = st.integers(2_000_000, 9_999_999)
_AROUND = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="@＠﹫"),
    max_size=30,
)
_DATES = st.dates().map(lambda d: d.isoformat())
_SURROUNDING = st.lists(st.one_of(_AROUND, _DATES, st.just(" ")), max_size=4).map("".join)


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, str]:
    """A US number written some way people write it; and its ten national digits."""
    area, line = draw(_AREA), draw(_LINE)
    national = f"{area}{line}"
    a, b, c = national[:3], national[3:6], national[6:]
    written = draw(
        st.sampled_from(
            [
                f"+1{national}",
                f"+1 {a} {b} {c}",
                f"({a}) {b}-{c}",
                f"{a}-{b}-{c}",
                f"{a}.{b}.{c}",
                national,
                national.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}),
            ]
        )
    )
    return written, national


_LOCAL = st.from_regex(r"[a-z][a-z0-9._+-]{2,15}", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z]{2,10}\.(org|com|net)", fullmatch=True)


@given(before=_SURROUNDING, after=_SURROUNDING, phone=phones())
def test_any_phone_in_random_text_is_masked(
    before: str, after: str, phone: tuple[str, str]
) -> None:
    written, national = phone
    masked = unicodedata.normalize("NFKC", mask_text(f"{before} {written} {after}"))
    # Digits on either side of a mask are not one number: look at each unmasked piece.
    assert all(national not in re.sub(r"\D", "", piece) for piece in masked.split("*"))


@given(
    before=_SURROUNDING,
    after=_SURROUNDING,
    local=_LOCAL,
    domain=_DOMAIN,
    at=st.sampled_from(["@", "＠", "﹫"]),
)
def test_any_email_in_random_text_is_masked(
    before: str, after: str, local: str, domain: str, at: str
) -> None:
    masked = mask_text(f"{before} {local}{at}{domain} {after}")
    assert f"{local}@" not in masked and local[1:] + "@" not in masked


def test_an_unexpected_error_in_a_command_is_printed_scrubbed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from notifier.cli.root import main

    @main.command("explode-for-test", hidden=True)
    def explode() -> None:
        raise RuntimeError(PG_UNIQUE)

    try:
        with pytest.raises(SystemExit) as exited:
            main.main(["explode-for-test"], standalone_mode=False)
    finally:
        main.commands.pop("explode-for-test")
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "unexpected error" in err and "uq_opt_outs_channel" in err
    assert "5550111" not in err
