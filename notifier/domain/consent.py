"""Consent in the domain's terms: the keywords a patient may text, and how a change reached us.

An opt-out is per channel and address: a STOP from a phone opts out every patient with that
phone. It overrides the consent imported with the patient until the address opts back in
(START), which lifts the opt-out but grants no consent the clinic did not record.
"""

from __future__ import annotations

import re
from enum import StrEnum

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")

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
    IMPORT = "import"  # the clinic's patient CSV (sms_consent / email_consent columns)


def classify(body: str) -> Keyword | None:
    """The keyword a whole message is (any case, surrounding spaces/punctuation), or None."""
    word = _EDGES.sub("", body.strip()).upper()
    if word in OPT_OUT_KEYWORDS:
        return Keyword.STOP
    if word in OPT_IN_KEYWORDS:
        return Keyword.START
    if word in HELP_KEYWORDS:
        return Keyword.HELP
    return None


def consent_state(consented: bool, opted_out: bool) -> str:
    """How a patient stands on one channel, as the console shows it."""
    if opted_out:
        return "opted out"
    return "consented" if consented else "no consent"
