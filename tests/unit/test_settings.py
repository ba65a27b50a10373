from __future__ import annotations

import pytest

from notifier import channels
from notifier.errors import ConfigurationError
from notifier.settings import load_settings


def test_defaults_need_no_credentials_and_disable_channels_with_a_reason() -> None:
    settings = load_settings()
    assert settings.database_url.startswith("sqlite:////")  # an absolute path
    assert settings.database_url.endswith("/.local/share/notifier/notifier.db")
    statuses = channels.statuses(settings)
    assert not statuses["sms"].enabled
    assert "NOTIFIER_TWILIO_ACCOUNT_SID" in statuses["sms"].reason
    assert "NOTIFIER_SMTP_HOST" in statuses["email"].reason


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP_PORT", "twenty-five")
    with pytest.raises(ConfigurationError, match="NOTIFIER_SMTP_PORT"):
        load_settings()


def test_a_half_configured_channel_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    with pytest.raises(ConfigurationError, match="NOTIFIER_TWILIO_AUTH_TOKEN"):
        channels.statuses(load_settings())


def test_a_worker_timeout_shorter_than_two_heartbeats_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_HEARTBEAT_SECONDS", "5")
    monkeypatch.setenv("NOTIFIER_WORKER_TIMEOUT_SECONDS", "6")
    with pytest.raises(ConfigurationError, match="NOTIFIER_WORKER_TIMEOUT_SECONDS"):
        load_settings()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_SMTP_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert "hunter2-secret" not in repr(settings)
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "hunter2-secret"


def test_settings_file_under_config_is_read_and_env_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    config = Path("config.toml")
    config.write_text('smtp_port = 2525\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("NOTIFIER_CONFIG_FILE", str(config))
    monkeypatch.setenv("NOTIFIER_LOG_LEVEL", "WARNING")
    settings = load_settings()
    assert settings.smtp_port == 2525
    assert settings.log_level == "WARNING"


def test_dotenv_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    Path(".env").write_text("NOTIFIER_PUBLIC_BASE_URL=https://notify.example/\n")
    assert load_settings().public_base_url == "https://notify.example"


def test_now_must_carry_an_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_NOW", "2025-02-18T18:00:00")
    with pytest.raises(ConfigurationError, match="NOTIFIER_NOW"):
        load_settings()
