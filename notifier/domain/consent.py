"""Consent in the domain's terms: the keywords a patient may text, and how a change reached us.

An opt-out is per channel and address: a STOP from a phone opts out every patient with that
phone. It overrides the consent imported with the patient until the address opts back in
(START), which lifts the opt-out but grants no consent the clinic did not record.

A keyword is the whole message, as Twilio matches, but compared after folding (``fold``), so
"OPT OUT", "opt-out", "stop all" and a fullwidth "ＳＴＯＰ" count; Spanish keywords count too.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# Twilio's defaults for long codes: Twilio itself blocks, unblocks and answers these when a text
# is exactly one of them (any case), and passes the text on to our webhook too.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Ours on top: Spanish, since we text in Spanish. Twilio does nothing with these, so we both
# record and confirm them.
SPANISH_OPT_OUT = frozenset({"PARA", "PARAR", "ALTO", "CANCELAR", "BAJA", "DETENER"})
SPANISH_OPT_IN = frozenset({"COMENZAR", "INICIAR", "ALTA", "SI"})
SPANISH_HELP = frozenset({"AYUDA"})
BOTH_LANGUAGES = frozenset({"INFO"})  # the reply follows the patient's language

_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_JOINERS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")  # spaces and hyphens/dashes inside a word
# Dropped: controls, format characters (zero-width space, soft hyphen) and accents.
_INVISIBLE = frozenset({"Cc", "Cf", "Mn"})

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"
CONSENT_GRANTED = "consent_granted"
CONSENT_WITHHELD = "consent_withheld"


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


class Source(StrEnum):
    """How a consent change reached us."""

    KEYWORD = "keyword"  # an SMS reply (STOP, START...) through the inbound webhook
    PROVIDER_OPT_OUT = "21610"  # the provider refused a send: the address opted out there
    UNSUBSCRIBE_LINK = "unsubscribe_link"  # the email's one-click or confirmed unsubscribe
    API = "api"
    IMPORT = "import"  # the clinic's patient CSV (each channel's consent column)
    KEYPRESS = "keypress"  # pressed 9 during a call: no more calls


@dataclass(frozen=True)
class Match:
    """A keyword a whole message is: its class, its language (None: the same word in every
    language we speak) and whether it is one of Twilio's own defaults, which Twilio confirms
    to the sender itself."""

    keyword: Keyword
    language: str | None
    standard: bool


def _table() -> dict[str, tuple[Keyword, str | None]]:
    rows: dict[str, tuple[Keyword, str | None]] = {}
    for words, keyword, language in (
        (OPT_OUT_KEYWORDS, Keyword.STOP, "en"),
        (OPT_IN_KEYWORDS, Keyword.START, "en"),
        (HELP_KEYWORDS, Keyword.HELP, "en"),
        (SPANISH_OPT_OUT, Keyword.STOP, "es"),
        (SPANISH_OPT_IN, Keyword.START, "es"),
        (SPANISH_HELP, Keyword.HELP, "es"),
    ):
        for word in words:
            rows[fold(word)] = (keyword, None if word in BOTH_LANGUAGES else language)
    return rows


def fold(body: str) -> str:
    """A message reduced to what a keyword is compared with: NFKC (fullwidth ＳＴＯＰ is STOP),
    accents, controls and zero-width characters dropped, case-folded, punctuation around it
    trimmed, and spaces and hyphens inside joined ("opt-out", "OPT OUT" → "optout")."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", body))
    text = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE)
    text = _EDGES.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _JOINERS.sub("", text)


def match(body: str) -> Match | None:
    """The keyword a whole message is (as Twilio matches: the message is the keyword), or None."""
    found = _KEYWORDS.get(fold(body))
    if found is None:
        return None
    keyword, language = found
    return Match(keyword, language, body.strip().upper() in _STANDARD)


_KEYWORDS = _table()
_STANDARD = OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS  # Twilio answers these itself


def consent_state(consented: bool, opted_out: bool) -> str:
    """How a patient stands on one channel, as the console shows it."""
    if opted_out:
        return "opted out"
    return "consented" if consented else "no consent"
