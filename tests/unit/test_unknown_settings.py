"""A NOTIFIER_* name no setting reads is a typo until shown otherwise: named, with the closest
known setting, from the environment and from .env alike; the names read elsewhere are not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from notifier.settings import load_settings, unknown_variables


def test_a_misspelt_variable_gets_the_closest_known_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_TWILIO_AUTH_TOKN", "x")
    monkeypatch.setenv("NOTIFIER_SMTP_HOST", "mail.example.org")  # a real one
    assert unknown_variables() == {"NOTIFIER_TWILIO_AUTH_TOKN": "NOTIFIER_TWILIO_AUTH_TOKEN"}


def test_a_name_like_nothing_is_named_without_a_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_ZZZ", "1")
    assert unknown_variables() == {"NOTIFIER_ZZZ": None}


def test_names_read_outside_the_settings_are_not_typos() -> None:
    environ = {"NOTIFIER_CONFIG_FILE": "x.toml", "NOTIFIER_TEST_POSTGRES_URL": "postgresql://"}
    assert unknown_variables(environ) == {}


def test_a_misspelt_name_in_dotenv_is_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / ".env").write_text("NOTIFIER_QUIET_HOUR=off\n")  # the working directory's .env
    with caplog.at_level(logging.WARNING, logger="notifier.settings"):
        load_settings()
        load_settings()
    warnings = [r.getMessage() for r in caplog.records if "unknown setting" in r.getMessage()]
    assert warnings == [
        "unknown setting NOTIFIER_QUIET_HOUR is ignored: did you mean NOTIFIER_QUIET_HOURS?"
    ]
