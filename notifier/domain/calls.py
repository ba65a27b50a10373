"""Calls, in the domain's terms: the keys a patient may press, who answered, the voice a call
speaks in, and when a busy or unanswered call is tried again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from notifier.errors import ValidationError

REPEAT_KEY = "1"  # press 1 to hear the message again
STOP_KEY = "9"  # press 9 to get no more calls (a voice opt-out in the consent ledger)


@dataclass(frozen=True)
class Voice:
    """What ``<Say>`` speaks in: its ``language`` ("en-US") and ``voice`` ("Polly.Joanna")."""

    language: str
    voice: str


def parse_voices(text: str) -> dict[str, Voice]:
    """``"en=en-US:Polly.Joanna,es=es-US:Polly.Lupe"`` → the voice per message language."""
    voices: dict[str, Voice] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        language, equals, spoken = item.partition("=")
        say_language, colon, voice = spoken.partition(":")
        if not equals or not colon or not language.strip() or not say_language or not voice:
            raise ValidationError(
                f"voice {item!r} is not language=say-language:voice, like en=en-US:Polly.Joanna",
                "voice_voices",
            )
        voices[language.strip().lower()] = Voice(say_language.strip(), voice.strip())
    if not voices:
        raise ValidationError("no voice given, like en=en-US:Polly.Joanna", "voice_voices")
    return voices


def answered_by(value: str) -> str:
    """Twilio's AnsweredBy → ``machine`` (a voicemail or fax), ``human``, or ``unknown``."""
    word = value.strip().lower()
    if word.startswith("machine") or word == "fax":
        return "machine"
    return "human" if word == "human" else "unknown"


@dataclass(frozen=True)
class Redial:
    """A channel's policy for reports meaning "try again later": how many more tries, and how
    far apart."""

    tries: int
    spacing: timedelta

    def allows(self, calls_made: int) -> bool:
        """Whether another call may follow ``calls_made`` calls."""
        return calls_made < 1 + self.tries


@dataclass(frozen=True)
class Phrases:
    """What a call says around the message, per language."""

    menu: str  # after the message, while listening for a key
    stopped: str  # after the patient pressed 9
    goodbye: str


PHRASES = {
    "en": Phrases(
        "To hear this message again, press one. To stop these calls, press nine.",
        "You will get no more calls from us. Goodbye.",
        "Thank you. Goodbye.",
    ),
    "es": Phrases(
        "Para escuchar este mensaje otra vez, oprima el uno. Para no recibir más llamadas, "
        "oprima el nueve.",
        "No recibirá más llamadas nuestras. Adiós.",
        "Gracias. Adiós.",
    ),
}


def phrases(language: str) -> Phrases:
    return PHRASES.get(language, PHRASES["en"])
