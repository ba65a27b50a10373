"""Dates, times and phone numbers written for the ear, for the voice channel's templates.

A text-to-speech voice reads "2/19/2025 at 12:30 PM" as numbers and slashes; a call says
"Wednesday, February nineteenth, at twelve thirty p.m.". Weekday and month names come from
Babel (CLDR), the same data the texts use; numbers in words (cardinals, and English ordinals)
from ``num2words``, which knows each language's forms (docs/design/libraries.md).
"""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date
from num2words import num2words

_ES_PERIODS = ((12, "de la mañana"), (13, "del mediodía"), (20, "de la tarde"), (24, "de la noche"))


def _words(number: int, language: str, ordinal: bool = False) -> str:
    return str(num2words(number, lang=language, to="ordinal" if ordinal else "cardinal"))


def spoken_date(value: date | datetime, language: str, locale: str) -> str:
    """ "Wednesday, February nineteenth"; "miércoles diecinueve de febrero"."""
    day = value.date() if isinstance(value, datetime) else value
    weekday = format_date(day, "EEEE", locale=locale)
    month = format_date(day, "LLLL", locale=locale)
    if language == "es":
        number = "primero" if day.day == 1 else _words(day.day, "es")
        return f"{weekday} {number} de {month}"
    return f"{weekday}, {month} {_words(day.day, 'en', ordinal=True)}"


def spoken_time(value: datetime, language: str) -> str:
    """ "twelve thirty p.m.", "nine a.m.", "nine oh five a.m."; "doce y media del mediodía"."""
    hour = value.hour % 12 or 12
    if language == "es":
        minutes = {0: "en punto", 15: "y cuarto", 30: "y media"}.get(
            value.minute, f"y {_words(value.minute, 'es')}"
        )
        period = next(words for until, words in _ES_PERIODS if value.hour < until)
        return f"{_words(hour, 'es')} {minutes} {period}"
    if value.minute == 0:
        minutes = ""
    elif value.minute < 10:
        minutes = f" oh {_words(value.minute, 'en')}"
    else:
        minutes = f" {_words(value.minute, 'en')}"
    return f"{_words(hour, 'en')}{minutes} {'a.m.' if value.hour < 12 else 'p.m.'}"


def spoken_digits(phone: str, language: str) -> str:
    """A phone number as people write it, read digit by digit in its groups:
    "(540) 555-0100" → "five four zero, five five five, zero one zero zero"."""
    groups: list[list[str]] = [[]]
    for char in phone:
        if char.isdigit():
            groups[-1].append(_words(int(char), language))
        elif groups[-1]:
            groups.append([])
    return ", ".join(" ".join(group) for group in groups if group)
