"""Reply keywords as Twilio's defaults: whole message, any case, spaces and punctuation around."""

from __future__ import annotations

import pytest

from notifier.domain.consent import Keyword, classify
from notifier.unsubscribe import Subscriber, UnsubscribeTokens


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", Keyword.STOP),
        ("stop", Keyword.STOP),
        ("  Stop.  ", Keyword.STOP),
        ("STOPALL", Keyword.STOP),
        ("unsubscribe!", Keyword.STOP),
        ("Cancel", Keyword.STOP),
        ("end", Keyword.STOP),
        ("QUIT", Keyword.STOP),
        ("revoke", Keyword.STOP),
        ("OptOut", Keyword.STOP),
        ("START", Keyword.START),
        ("yes", Keyword.START),
        ("Unstop", Keyword.START),
        ("HELP", Keyword.HELP),
        ("info?", Keyword.HELP),
        ("Stop please", None),
        ("don't stop", None),
        ("STOP STOP", None),
        ("opt out", None),
        ("", None),
        ("thanks!", None),
    ],
)
def test_keywords(body: str, keyword: Keyword | None) -> None:
    assert classify(body) == keyword


def test_unsubscribe_tokens_round_trip_and_refuse_forgery() -> None:
    tokens = UnsubscribeTokens("a-secret-of-sixteen-chars")
    maria = Subscriber(1, "email", "maria@example.org")
    token = tokens.make(maria)
    assert tokens.read(token) == maria
    assert tokens.read(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    forged = UnsubscribeTokens("another-secret-sixteen").make(Subscriber(2, "email", "x@y.org"))
    assert tokens.read(forged) is None
    assert tokens.read("garbage") is None
