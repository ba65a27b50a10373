"""What we text back to a patient's keyword, in English and Spanish.

CTIA asks a HELP answer for who we are, what the texts are, how to stop, and a contact; an opt-out
or opt-in is confirmed. Twilio confirms its own default keywords itself (an exact STOP, START...),
so we confirm only the ones it does not (Spanish, "OPT OUT", "ＳＴＯＰ"...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from notifier.domain.consent import Keyword, Match

LANGUAGES = ("en", "es")
DEFAULT_PROGRAM = "Clinic closure alerts"

_TITLE = {"en": "{clinic} closure alerts", "es": "Avisos de cierre de {clinic}"}
_HELP = {
    "en": (
        "{name}: we text you when the clinic closes or changes its hours. Msg & data rates may "
        "apply. Reply STOP to opt out, START to opt back in. {contact}"
    ),
    "es": (
        "{name}: le avisamos por mensaje cuando la clínica cierra o cambia su horario. Pueden "
        "aplicarse tarifas de mensajes y datos. Responda PARA para darse de baja, COMENZAR "
        "para volver a recibirlos. {contact}"
    ),
}
_CONTACT = {
    "en": ("Questions: {phone}.", "Questions: call your clinic."),
    "es": ("Preguntas: {phone}.", "Preguntas: llame a su clínica."),
}
_CONFIRM = {
    (Keyword.STOP, "en"): (
        "{name}: you are unsubscribed and will get no more texts. Reply START to opt back in."
    ),
    (Keyword.STOP, "es"): (
        "{name}: se ha dado de baja y no recibirá más mensajes. Responda COMENZAR para volver "
        "a recibirlos."
    ),
    (Keyword.START, "en"): "{name}: you will get closure alerts again. Reply STOP to opt out.",
    (Keyword.START, "es"): (
        "{name}: volverá a recibir avisos de cierre. Responda PARA para darse de baja."
    ),
}


@dataclass(frozen=True)
class Sender:
    """Who the patient hears from: their clinic, or (a number we do not know) the program."""

    clinic: str | None  # the location's name
    program: str  # NOTIFIER_PROGRAM_NAME, used as written when there is no clinic
    phone: str | None  # as people dial it: "(540) 555-0100"

    def title(self, language: str) -> str:
        return _TITLE[language].format(clinic=self.clinic) if self.clinic else self.program


def reply_language(found: Match, patient_languages: Iterable[str]) -> str:
    """The keyword's language; for a word both languages use (INFO), the patients' one if they
    agree on one we speak; else English."""
    if found.language is not None:
        return found.language
    spoken = {language for language in patient_languages if language in LANGUAGES}
    return spoken.pop() if len(spoken) == 1 else "en"


def answer(found: Match, language: str, sender: Sender) -> str | None:
    """The text to send back for a keyword, or None when Twilio already confirms it."""
    name = sender.title(language)
    if found.keyword is Keyword.HELP:
        with_phone, without = _CONTACT[language]
        contact = with_phone.format(phone=sender.phone) if sender.phone else without
        return _HELP[language].format(name=name, contact=contact)
    if found.standard:
        return None
    return _CONFIRM[(found.keyword, language)].format(name=name)
