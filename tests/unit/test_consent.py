"""Reply keywords as Twilio's defaults (whole message, any case, spaces and punctuation around),
folded (NFKC, case, spaces and hyphens joined) and in Spanish too; opaque unsubscribe tokens."""

from __future__ import annotations

import base64
import json

import pytest
from itsdangerous import URLSafeSerializer

from notifier.domain.consent import Keyword, fold, match
from notifier.domain.replies import Sender, answer, reply_language
from notifier.domain.untrusted import printable
from notifier.unsubscribe import Claim, Subscriber, UnsubscribeTokens


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
        ("", None),
        ("thanks!", None),
        # folded: spaces and hyphens inside are joined, NFKC, case-folded, controls dropped
        ("OPT OUT", Keyword.STOP),
        ("opt-out", Keyword.STOP),
        ("Opt - Out!", Keyword.STOP),
        ("stop all", Keyword.STOP),
        ("Stop-All", Keyword.STOP),
        ("ＳＴＯＰ", Keyword.STOP),  # fullwidth
        ("ｓｔｏｐ。", Keyword.STOP),  # fullwidth, ideographic full stop
        ("STOP\x00", Keyword.STOP),
        ("\u200bSTOP\u200b", Keyword.STOP),  # zero-width spaces
        ("S\u00adTOP", Keyword.STOP),  # soft hyphen
        ("un stop", Keyword.START),
        ("opt in", None),  # not a keyword of ours
        ("STOP\nplease", None),
        # Spanish
        ("PARA", Keyword.STOP),
        ("para.", Keyword.STOP),
        ("Alto", Keyword.STOP),
        ("CANCELAR", Keyword.STOP),
        ("baja", Keyword.STOP),
        ("Comenzar", Keyword.START),
        ("Sí", Keyword.START),
        ("AYUDA", Keyword.HELP),
        ("¿Ayuda?", Keyword.HELP),
        ("para mañana", None),
        ("alto ahí", None),
    ],
)
def test_keywords(body: str, keyword: Keyword | None) -> None:
    found = match(body)
    assert (found.keyword if found else None) == keyword


@pytest.mark.parametrize(
    ("body", "language", "standard"),
    [
        ("STOP", "en", True),  # Twilio's own default keyword: Twilio confirms it itself
        (" stop ", "en", True),
        ("OPT OUT", "en", False),  # ours only: we confirm
        ("ＳＴＯＰ", "en", False),
        ("Stop.", "en", False),
        ("PARA", "es", False),
        ("cancelar", "es", False),
        ("AYUDA", "es", False),
        ("Sí", "es", False),
        ("INFO", None, True),  # the same word in English and Spanish: the patient's language
        ("HELP", "en", True),
    ],
)
def test_a_match_knows_its_language_and_whether_the_provider_handles_it(
    body: str, language: str | None, standard: bool
) -> None:
    found = match(body)
    assert found is not None
    assert (found.language, found.standard) == (language, standard)


def test_fold_joins_spaces_and_hyphens_and_drops_accents_and_controls() -> None:
    assert fold("  Opt-Out! ") == "optout"
    assert fold("ＳＴＯＰ\x00") == "stop"
    assert fold("¿Sí?") == "si"
    assert fold("x" * 5000) == "x" * 5000  # long bodies fold, and match nothing


@pytest.mark.parametrize(
    ("body", "languages", "expected"),
    [
        ("PARA", ["en"], "es"),  # the keyword's language wins
        ("STOP", ["es"], "en"),
        ("INFO", ["es"], "es"),  # a word both languages use: the patient's
        ("INFO", ["es", "es"], "es"),
        ("INFO", ["es", "en"], "en"),  # two patients, two languages: English
        ("INFO", ["fr"], "en"),  # a language we do not answer in
        ("INFO", [], "en"),
    ],
)
def test_the_reply_language(body: str, languages: list[str], expected: str) -> None:
    found = match(body)
    assert found is not None
    assert reply_language(found, languages) == expected


CLINIC = Sender("COVA", "Clinic closure alerts", "(540) 555-0100")
PROGRAM = Sender(None, "Valley Health alerts", None)


@pytest.mark.parametrize(
    ("body", "sender", "language", "fragments"),
    [
        ("STOP", CLINIC, "en", None),  # Twilio confirms its own keywords
        ("START", CLINIC, "en", None),
        ("OPT OUT", CLINIC, "en", ["COVA closure alerts", "unsubscribed", "START"]),
        ("PARA", CLINIC, "es", ["Avisos de cierre de COVA", "se ha dado de baja", "COMENZAR"]),
        ("Comenzar", CLINIC, "es", ["volverá a recibir", "PARA"]),
        ("HELP", CLINIC, "en", ["COVA closure alerts", "STOP", "Questions: (540) 555-0100."]),
        ("AYUDA", CLINIC, "es", ["Avisos de cierre de COVA", "PARA", "Preguntas: (540)"]),
        ("HELP", PROGRAM, "en", ["Valley Health alerts:", "call your clinic"]),
    ],
)
def test_the_answer_to_a_keyword(
    body: str, sender: Sender, language: str, fragments: list[str] | None
) -> None:
    found = match(body)
    assert found is not None
    text = answer(found, language, sender)
    if fragments is None:
        assert text is None
    else:
        assert text is not None
        assert all(fragment in text for fragment in fragments), text


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("STOP\x00", None, "STOP"),
        ("\x00\x01\x7f", None, ""),
        ("Carrier\nviolation\t", None, "Carrier violation"),
        ("x" * 500, 40, "x" * 40),
        ("  ÁÉ 😀  ", 10, "ÁÉ 😀"),
    ],
)
def test_printable_drops_controls_and_cuts(value: str, limit: int | None, expected: str) -> None:
    assert printable(value, limit) == expected


SECRET = "a-secret-of-sixteen-chars-and-more"
MARIA = Subscriber(1, "email", "maria@example.org")


def _payload(token: str) -> str:
    """What anyone can read from a token without the key (itsdangerous: base64 JSON)."""
    head = token.split(".")[0]
    return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()


def test_unsubscribe_tokens_do_not_carry_the_address() -> None:
    token = UnsubscribeTokens(SECRET).make(MARIA)
    payload = _payload(token)
    assert json.loads(payload)[:2] == [1, "email"]
    for part in ("maria", "example.org", "@"):
        assert part not in payload and part not in token


def test_a_token_names_its_subscriber_only_among_the_addresses_the_patient_has_or_had() -> None:
    tokens = UnsubscribeTokens(SECRET)
    claim = tokens.read(tokens.make(MARIA))
    assert claim is not None and (claim.patient_id, claim.channel) == (1, "email")
    assert tokens.subscriber(claim, ["maria.new@example.org", MARIA.address]) == MARIA
    assert tokens.subscriber(claim, ["jane@example.org"]) is None
    assert tokens.subscriber(claim, []) is None
    # the same address under another key is another tag: the binding is keyed
    other = UnsubscribeTokens("another-secret-sixteen-chars")
    other_claim = other.read(other.make(MARIA))
    assert other_claim is not None and other_claim.tag != claim.tag


def test_tokens_refuse_forgery() -> None:
    tokens = UnsubscribeTokens(SECRET)
    token = tokens.make(MARIA)
    assert tokens.read(token[:-2] + ("AA" if not token.endswith("AA") else "BB")) is None
    forged = UnsubscribeTokens("another-secret-sixteen").make(Subscriber(2, "email", "x@y.org"))
    assert tokens.read(forged) is None
    assert tokens.read("garbage") is None
    assert tokens.read("") is None


def test_links_already_sent_in_the_old_readable_format_still_read_for_the_patients_address() -> (
    None
):
    old = URLSafeSerializer(SECRET, salt="notifier.unsubscribe.v1").dumps(
        [1, "email", "maria@example.org"]
    )
    tokens = UnsubscribeTokens(SECRET)
    claim = tokens.read(old)
    assert claim == Claim(1, "email", address="maria@example.org")
    assert tokens.subscriber(claim, ["maria.old@example.org", "maria@example.org"]) == MARIA
    assert tokens.subscriber(claim, []) is None  # an address that patient never had
    assert tokens.subscriber(claim, ["someone.else@example.org"]) is None
    forged_old = URLSafeSerializer("not-our-secret-key", salt="notifier.unsubscribe.v1").dumps(
        [1, "email", "maria@example.org"]
    )
    assert tokens.read(forged_old) is None
