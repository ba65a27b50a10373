"""Spoken templates: the reference closure as a call says it, in English and Spanish (golden),
and the words for dates, times and phone numbers."""

from __future__ import annotations

from datetime import datetime

import pytest

from notifier.rendering.renderer import Renderer
from notifier.rendering.spoken import spoken_date, spoken_digits, spoken_time
from tests.unit.test_rendering import NY, reference_context


def test_golden_english_call_says_the_closure_for_the_ear() -> None:
    spoken = Renderer().render_spoken(reference_context(first_name="Maria"))
    assert spoken.text == (
        "Hello Maria. This is COVA Spine and Pain Center, with an important message. "
        "Due to inclement weather, COVA Spine and Pain Center will be closing early "
        "Wednesday, February nineteenth, at twelve thirty p.m., and will be closed all day "
        "Thursday, February twentieth. We reopen Friday, February twenty-first, at eight a.m. "
        "Please be safe. If you have questions, call us at "
        "five four zero, five five five, zero one zero zero."
    )
    assert spoken.cost == 1  # one call, whatever its length


def test_golden_spanish_call_says_the_closure_for_the_ear() -> None:
    spoken = Renderer().render_spoken(
        reference_context(language="es", reason="el mal tiempo", first_name="María")
    )
    assert spoken.text == (
        "Hola María. Le llama COVA Spine and Pain Center con un mensaje importante. "
        "Por el mal tiempo, COVA Spine and Pain Center cerrará temprano el miércoles "
        "diecinueve de febrero, a las doce y media del mediodía, y cerrará todo el día el "
        "jueves veinte de febrero. Reabrimos el viernes veintiuno de febrero, a las ocho en "
        "punto de la mañana. Cuídese. Si tiene preguntas, llámenos al "
        "cinco cuatro cero, cinco cinco cinco, cero uno cero cero."
    )


@pytest.mark.parametrize(
    ("hour", "minute", "english", "spanish"),
    [
        (12, 30, "twelve thirty p.m.", "doce y media del mediodía"),
        (9, 0, "nine a.m.", "nueve en punto de la mañana"),
        (9, 5, "nine oh five a.m.", "nueve y cinco de la mañana"),
        (0, 15, "twelve fifteen a.m.", "doce y cuarto de la mañana"),
        (17, 45, "five forty-five p.m.", "cinco y cuarenta y cinco de la tarde"),
        (21, 0, "nine p.m.", "nueve en punto de la noche"),
    ],
)
def test_times_in_words(hour: int, minute: int, english: str, spanish: str) -> None:
    at = datetime(2025, 2, 19, hour, minute, tzinfo=NY)
    assert spoken_time(at, "en") == english
    assert spoken_time(at, "es") == spanish


def test_dates_and_digits_in_words() -> None:
    day = datetime(2025, 3, 1, tzinfo=NY)
    assert spoken_date(day, "en", "en_US") == "Saturday, March first"
    assert spoken_date(day, "es", "es") == "sábado primero de marzo"
    assert spoken_digits("+1 540-555-0100", "en") == (
        "one, five four zero, five five five, zero one zero zero"
    )
