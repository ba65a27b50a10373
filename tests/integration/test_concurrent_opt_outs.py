"""Simultaneous opt-outs for one address (STOP texts with distinct MessageSids, one-click POSTs
of one unsubscribe link), and two saves of one new location: a unique key decides, nobody gets
a 500, the ledger has one row, and no database error text reaches the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import select

from notifier.errors import ValidationError
from notifier.storage.models import Patient
from notifier.unsubscribe import Subscriber, tokens
from tests.support.actors import OPERATOR
from tests.support.records import ledger, opted_out
from tests.support.web import Web

MARIA_PHONE, MARIA_EMAIL = "+15405550111", "maria@example.org"
AT_ONCE = 20
T = TypeVar("T")


def _all_at_once(count: int, work: Callable[[int], T]) -> list[T]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def test_twenty_simultaneous_stops_from_each_of_three_numbers_all_get_200_one_ledger_row(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    numbers = [MARIA_PHONE, "+15405550112", "+15405550114"]

    def stop(i: int) -> int:
        return web.inbound("STOP", numbers[i % len(numbers)])[0]

    assert _all_at_once(AT_ONCE * len(numbers), stop) == [200] * AT_ONCE * len(numbers)
    for number in numbers:
        assert opted_out(web.app, "sms", number)
        entries = {entry[:3] for entry in ledger(web.app, "sms", number)}
        assert entries == {("keyword", "opted_in", "opted_out")}  # one per patient, once
    assert len(ledger(web.app, "sms", MARIA_PHONE)) == 1
    _no_database_error_logged(caplog)


def test_twenty_simultaneous_one_click_posts_of_one_link_all_get_200_and_one_ledger_row(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with web.app.db.session() as s:
        maria = s.scalar(select(Patient.id).where(Patient.external_id == "p1"))
    assert maria is not None
    signer = tokens(web.app.settings)
    assert signer is not None
    path = "/unsubscribe/" + signer.make(Subscriber(maria, "email", MARIA_EMAIL))

    def click(_: int) -> int:
        with httpx.Client(base_url=web.server.url, timeout=30.0) as client:
            return client.post(
                path,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).status_code

    assert _all_at_once(AT_ONCE, click) == [200] * AT_ONCE
    assert [entry[:3] for entry in ledger(web.app, "email", MARIA_EMAIL)] == [
        ("unsubscribe_link", "opted_in", "opted_out")
    ]
    _no_database_error_logged(caplog)


def test_two_simultaneous_saves_of_one_new_location_both_succeed(web: Web) -> None:
    def save(i: int) -> bool:
        saved = web.app.locations.save(
            OPERATOR, "roanoke", f"Roanoke {i}", "America/New_York", "Mon-Fri 08:00-17:00"
        )
        return saved.created

    created = _all_at_once(8, save)
    assert sorted(created) == [False] * 7 + [True]
    assert [loc.slug for loc in web.app.locations.all(OPERATOR)].count("roanoke") == 1


def _no_database_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [], [r.getMessage() for r in problems]
    text = caplog.text
    assert "IntegrityError" not in text and "UniqueViolation" not in text


def test_simultaneous_creations_of_one_console_user_make_one_and_refuse_the_rest(
    web: Web,
) -> None:
    def create(_: int) -> str:
        try:
            web.app.accounts.create_user("ops@cova.example", "manager", "a long enough password")
        except ValidationError as exc:
            return str(exc)
        return "created"

    outcomes = _all_at_once(6, create)
    assert outcomes.count("created") == 1
    assert all("already exists" in o for o in outcomes if o != "created")
