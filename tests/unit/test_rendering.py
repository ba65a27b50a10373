"""Rendering: the golden reference notice, escaping, and broken templates caught early."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from notifier.domain.closures import BusinessHours, Closure, parse_local, zone
from notifier.errors import TemplateError
from notifier.rendering.renderer import MessageContext, Renderer, default_templates_dir

NY = zone("America/New_York")


def reference_context(**changes: object) -> MessageContext:
    """The COVA notice from structured fields: closes 12:30 Wed 2/19, reopens Fri 2/21."""
    c = Closure.checked(
        [
            (
                parse_local("2025-02-19 12:30", NY, "start"),
                parse_local("2025-02-21 00:00", NY, "end"),
            )
        ],
        NY,
        BusinessHours.parse("Mon-Fri 08:00-17:00"),
    )
    values: dict[str, object] = {
        "language": "en",
        "location_name": "COVA Spine and Pain Center",
        "location_phone": "(540) 555-0100",
        "reason": "inclement weather",
        "segments": c.segments(),
        "reopens": c.reopens(),
    }
    return MessageContext(**(values | changes))  # type: ignore[arg-type]


def test_golden_sms_states_the_early_close_and_the_full_day() -> None:
    sms = Renderer().render_sms(reference_context())
    assert sms.text == (
        "Due to inclement weather, COVA Spine and Pain Center will be closing early "
        "Wednesday, 2/19/2025 at 12:30 PM and will be closed all day Thursday, 2/20/2025. "
        "We reopen Friday, 2/21/2025 at 8:00 AM. Please be safe. "
        "Questions: (540) 555-0100. Reply STOP to opt out."
    )
    assert (sms.info.encoding, sms.info.segments) == ("GSM-7", 2)


def test_golden_email_states_both_days_in_text_and_html() -> None:
    email = Renderer().render_email(reference_context(first_name="Maria"))
    assert email.subject == "COVA Spine and Pain Center: closure on Wed 2/19 – Thu 2/20"
    for body in (email.text, email.html):
        assert "closing early Wednesday, 2/19/2025 at 12:30 PM" in body
        assert "closed all day Thursday, 2/20/2025" in body
        assert "Maria" in body
    assert email.html.lstrip().startswith("<!DOCTYPE html>")


def test_html_escapes_what_a_manager_typed_but_text_keeps_it() -> None:
    email = Renderer().render_email(reference_context(reason="<b>ice</b> & snow"))
    assert "&lt;b&gt;ice&lt;/b&gt; &amp; snow" in email.html
    assert "<b>ice</b> & snow" in email.text


def test_custom_wording_replaces_the_generated_sentence() -> None:
    sms = Renderer().render_sms(reference_context(custom_message="We are closed Thursday."))
    assert sms.text.startswith("COVA Spine and Pain Center: We are closed Thursday.")
    assert "closing early" not in sms.text


def test_sms_text_is_normalised_so_curly_quotes_do_not_force_ucs2() -> None:
    sms = Renderer().render_sms(reference_context(reason="the “big” storm"))
    assert '"big"' in sms.text
    assert sms.info.encoding == "GSM-7"


@pytest.fixture
def broken_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(default_templates_dir(), target)
    return target


def test_a_syntax_error_names_the_template_and_line(broken_templates: Path) -> None:
    (broken_templates / "sms" / "closure.en.txt.j2").write_text("Hello {% if %}\n")
    with pytest.raises(TemplateError, match=r"sms/closure.en.txt.j2 line 1"):
        Renderer(broken_templates).render_sms(reference_context())


def test_a_missing_variable_is_an_error_not_blank_text(broken_templates: Path) -> None:
    (broken_templates / "email" / "closure.en.subject.j2").write_text("{{ clinic_nmae }}\n")
    with pytest.raises(TemplateError, match="clinic_nmae"):
        Renderer(broken_templates).render_email(reference_context())


def test_the_sandbox_refuses_unsafe_attribute_access(broken_templates: Path) -> None:
    (broken_templates / "sms" / "closure.en.txt.j2").write_text(
        "{{ reason.__class__.__mro__[1].__subclasses__() }}"
    )
    with pytest.raises(TemplateError):
        Renderer(broken_templates).render_sms(reference_context())


def test_a_language_without_templates_is_an_error() -> None:
    with pytest.raises(TemplateError, match="language 'fr'"):
        Renderer().render_sms(reference_context(language="fr"))


def test_languages_are_discovered_from_the_templates() -> None:
    assert "en" in Renderer().languages()


def test_golden_spanish_sms_uses_spanish_dates_and_times() -> None:
    sms = Renderer().render_sms(reference_context(language="es", reason="el mal tiempo"))
    assert sms.text == (
        "Por el mal tiempo, COVA Spine and Pain Center cerrará temprano el miércoles 19 de "
        "febrero de 2025 a las 12:30 p. m. y cerrará todo el día el jueves 20 de febrero de "
        "2025. Reabrimos el viernes 21 de febrero de 2025 a las 8:00 a. m. Cuídese. "
        "Preguntas: (540) 555-0100. Responda STOP para cancelar."
    )
    assert sms.info.encoding == "UCS-2"  # á and í are not in GSM-7: the preview says so


def test_golden_spanish_email() -> None:
    email = Renderer().render_email(
        reference_context(language="es", reason="el mal tiempo", first_name="María")
    )
    assert email.subject == "COVA Spine and Pain Center: cierre el mié 19/2 – jue 20/2"
    assert email.text.startswith("Hola, María:")
    assert "miércoles 19 de febrero de 2025 a las 12:30" in email.html


@pytest.mark.parametrize("language", Renderer().languages())
def test_every_language_has_every_channel_part(language: str) -> None:
    root = default_templates_dir()
    for part in (
        "sms/closure.{}.txt.j2",
        "email/closure.{}.subject.j2",
        "email/closure.{}.txt.j2",
        "email/closure.{}.html.j2",
    ):
        assert (root / part.format(language)).is_file(), part.format(language)


def test_a_missing_part_for_a_language_fails_at_render_time(broken_templates: Path) -> None:
    (broken_templates / "email" / "closure.es.html.j2").unlink()
    with pytest.raises(TemplateError, match=r"closure.es.html.j2 is missing"):
        Renderer(broken_templates).render_email(reference_context(language="es"))


@pytest.mark.parametrize(
    ("language", "sms_start", "note", "subject_start"),
    [
        (
            "en",
            "UPDATE: New times, new reason. Due to ice, COVA",
            "This updates our earlier message: new times, new reason.",
            "Update: COVA",
        ),
        (
            "es",
            "ACTUALIZACIÓN: Nuevo horario, nuevo motivo. Por ice, COVA",
            "Este mensaje actualiza el anterior: nuevo horario, nuevo motivo.",
            "Actualización: COVA",
        ),
    ],
)
def test_golden_update_says_what_changed_in_sms_and_email(
    language: str, sms_start: str, note: str, subject_start: str
) -> None:
    ctx = reference_context(
        language=language, reason="ice", change="update", changed=("times", "reason")
    )
    renderer = Renderer()
    assert renderer.render_sms(ctx).text.startswith(sms_start)
    email = renderer.render_email(ctx)
    assert email.subject.startswith(subject_start)
    assert note in email.text and note in email.html
    assert email.text.index(note) < email.text.index("COVA Spine and Pain Center")
    appointment = renderer.render_sms(
        MessageContext(**(vars(ctx) | {"appointments": ()})), "appointment"
    )
    assert appointment.text.startswith(sms_start.split(":")[0] + ":")


def test_an_update_without_known_changes_still_says_it_is_one() -> None:
    email = Renderer().render_email(reference_context(change="update"))
    assert "This updates our earlier message." in email.text
    assert Renderer().render_sms(reference_context(change="update")).text.startswith("UPDATE: ")


def test_golden_spanish_sms_with_a_reason_code() -> None:
    """The category's Spanish words, never the English free text beside them."""
    sms = Renderer().render_sms(reference_context(language="es", reason="", reason_code="weather"))
    assert sms.text == (
        "Por el mal tiempo, COVA Spine and Pain Center cerrará temprano el miércoles 19 de "
        "febrero de 2025 a las 12:30 p. m. y cerrará todo el día el jueves 20 de febrero de "
        "2025. Reabrimos el viernes 21 de febrero de 2025 a las 8:00 a. m. Cuídese. "
        "Preguntas: (540) 555-0100. Responda STOP para cancelar."
    )


@pytest.mark.parametrize("language", Renderer().languages())
def test_every_language_words_every_reason_code(language: str) -> None:
    from notifier.domain.notices import ReasonCode

    renderer = Renderer()
    for code in ReasonCode:
        words = renderer.reason_words(language, code.value, "")
        assert words or code is ReasonCode.OTHER, (language, code)
