"""Reasons in every language: a reason category is worded by each language's templates, free
text goes only into messages of the language it is written in, and the preview says which
patients lack text (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest

from notifier.bootstrap import App
from notifier.errors import ValidationError
from notifier.storage.models import Notice
from notifier.usecases.notice_requests import NoticeRequest
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import HEADER
from tests.support.web import Web, csrf_of, signed_in

PATIENTS = f"""\
{HEADER}
p1,Maria,Lopez,540-555-0111,,en,cova,yes,no
p6,Lucía,García,540-555-0116,,es,cova,yes,no
"""
REFERENCE = NoticeRequest(
    location="cova",
    starts="2025-02-19 12:30",
    ends="2025-02-21 00:00",
    reason_code="weather",
    reason="ice on the roads",
    channels=("sms",),
)
SPANISH_REFERENCE = (
    "Por el mal tiempo, COVA Spine and Pain Center cerrará temprano el miércoles 19 de febrero "
    "de 2025 a las 12:30 p. m. y cerrará todo el día el jueves 20 de febrero de 2025. "
    "Reabrimos el viernes 21 de febrero de 2025 a las 8:00 a. m. Cuídese. Preguntas: "
    "(540) 555-0100. Responda STOP para cancelar."
)


@pytest.fixture
def clinic(app: App, cova: str) -> App:
    app.patients.import_patients(OPERATOR, io.StringIO(PATIENTS))
    return app


def sent_texts(app: App) -> dict[str, str]:
    app.fanout.fire_due()
    channel = FakeChannel()
    app.dispatcher({"sms": channel}, "w1").drain()  # type: ignore[dict-item]
    return {m.to: m.text for m in channel.sent}


def test_the_spanish_text_says_the_category_in_spanish_and_never_the_english_text(
    clinic: App,
) -> None:
    preview = clinic.notices.draft(OPERATOR, REFERENCE)
    assert any("'es' get the reason category without its free text" in w for w in preview.warnings)
    clinic.notices.create(OPERATOR, REFERENCE)
    texts = sent_texts(clinic)
    assert texts["+15405550116"] == SPANISH_REFERENCE  # golden: no "ice on the roads"
    assert texts["+15405550111"].startswith(
        "Due to inclement weather (ice on the roads), COVA Spine and Pain Center will be "
        "closing early Wednesday, 2/19/2025 at 12:30 PM"
    )


def test_free_text_per_language_goes_only_to_its_language(clinic: App) -> None:
    request = replace(REFERENCE, reason_texts={"es": "hielo en las carreteras"})
    assert not any("'es'" in w for w in clinic.notices.draft(OPERATOR, request).warnings)
    clinic.notices.create(OPERATOR, request)
    texts = sent_texts(clinic)
    assert texts["+15405550116"].startswith(
        "Por el mal tiempo (hielo en las carreteras), COVA Spine and Pain Center cerrará"
    )
    assert "hielo" not in texts["+15405550111"]


def test_a_custom_message_per_language(clinic: App) -> None:
    request = replace(
        REFERENCE,
        message="We are closed today, stay safe.",
        message_texts={"es": "Hoy estamos cerrados, cuídese."},
    )
    clinic.notices.create(OPERATOR, request)
    texts = sent_texts(clinic)
    assert "Hoy estamos cerrados, cuídese." in texts["+15405550116"]
    assert "We are closed" not in texts["+15405550116"]
    assert "We are closed today, stay safe." in texts["+15405550111"]


def test_english_only_free_text_leaves_spanish_without_a_reason_and_says_so(
    clinic: App,
) -> None:
    request = replace(REFERENCE, reason_code=None, reason="a burst pipe")
    warnings = clinic.notices.draft(OPERATOR, request).warnings
    assert any("'es' get no reason: it is written only in 'en'" in w for w in warnings)
    clinic.notices.create(OPERATOR, request)
    spanish = sent_texts(clinic)["+15405550116"]
    assert spanish.startswith("COVA Spine and Pain Center cerrará temprano")
    assert "burst pipe" not in spanish


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"reason_code": "snow"}, "reason code 'snow' not understood"),
        ({"reason_code": "other", "reason": ""}, "give a reason"),
        ({"reason_texts": {"fr": "neige"}}, "no 'fr' templates"),
        ({"reason_texts": {"en": "ice"}}, "the location's language"),
        ({"message_texts": {"es": "Cerrado."}}, "needs one in the location's language"),
    ],
)
def test_bad_reasons_are_refused(clinic: App, changes: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        clinic.notices.create(OPERATOR, replace(REFERENCE, **changes))  # type: ignore[arg-type]
    assert clinic.notices.all(OPERATOR) == []


def test_the_console_takes_a_reason_category_and_spanish_text(web: Web) -> None:
    with signed_in(web, "manager") as manager:
        form = {
            "location": "cova",
            "starts": "2025-02-19T12:30",
            "ends": "2025-02-21T00:00",
            "reason": "",
            "reason_code": "weather",
            "reason_es": "hielo en las carreteras",
            "channels": ["sms"],
            "send_mode": "now",
            "csrf": csrf_of(manager.get("/console/notices/new")),
        }
        created = manager.post("/console/notices", data=form)
        assert created.status_code == 303, created.text
    (notice,) = web.app.notices.all(OPERATOR)
    assert notice.reason_code == "weather" and notice.reason == ""
    with web.app.db.session() as s:
        stored = s.get(Notice, notice.id)
        assert stored is not None and stored.texts == {"reason": {"es": "hielo en las carreteras"}}
