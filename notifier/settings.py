"""Configuration: one validated ``Settings`` object, built at start and passed in.

Sources, highest first: constructor arguments, environment (``NOTIFIER_*``), ``.env``, the TOML
file named by ``NOTIFIER_CONFIG_FILE`` (default ``config/notifier.toml``, optional), defaults.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from notifier.domain.calls import parse_voices
from notifier.domain.contacts import normalize_phone
from notifier.domain.quiet_hours import QuietHours
from notifier.domain.secret_keys import weakness
from notifier.domain.senders import parse_pool
from notifier.errors import ConfigurationError, NotifierError, ValidationError

ENV_PREFIX = "NOTIFIER_"
DEFAULT_CONFIG_FILE = Path("config/notifier.toml")
# NOTIFIER_* variables read by something other than ``Settings``: not typos.
OTHER_VARIABLES = frozenset({"CONFIG_FILE", "TEST_POSTGRES_URL"})

log = logging.getLogger(__name__)
_warned: set[str] = set()


def default_database_url() -> str:
    """An absolute SQLite path under the user's data directory, whatever the working directory:
    ``$XDG_DATA_HOME/notifier/notifier.db`` (default ``~/.local/share/notifier/notifier.db``)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(data_home) / 'notifier' / 'notifier.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", validate_default=True
    )

    # Default: default_database_url(); a relative SQLite path is made absolute at start.
    database_url: str = Field(default_factory=default_database_url)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    # Senders (issue 25): a Messaging Service (Twilio picks the number; sent as
    # MessagingServiceSid, metered at NOTIFIER_SMS_RATE_PER_SECOND), or a pool of From numbers
    # with their own rates, "+15405550100=1,+18885550100=3" (segments/s; default the SMS rate).
    twilio_messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_from_numbers: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = Field(default=15.0, gt=0)

    # Voice (issue 22): calls through Twilio's Calls API with the account above, from a
    # voice-capable number; the TwiML is served by this service (NOTIFIER_PUBLIC_BASE_URL) from
    # signed links that expire after voice_link_minutes. Busy or unanswered calls are tried
    # voice_retries more times, voice_retry_minutes apart (never in quiet hours). <Say> speaks
    # in the voice and language given per message language ("en=en-US:Polly.Joanna,...").
    voice_from_number: str | None = None
    voice_calls_per_second: float = Field(default=1.0, gt=0)
    voice_retries: int = Field(default=2, ge=0, le=10)
    voice_retry_minutes: float = Field(default=15.0, gt=0)
    voice_link_minutes: float = Field(default=60.0, gt=0)
    voice_voices: str = "en=en-US:Polly.Joanna,es=es-US:Polly.Lupe"
    # Look up the phone type (mobile, landline) of patients imported without one (Twilio Lookup
    # v2 line type intelligence, billed per number).
    twilio_lookup: bool = False

    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    email_from: str | None = None

    public_base_url: str | None = None

    # HTTP service (webhooks, unsubscribe links, JSON API) inside `notifier serve`.
    http_enabled: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # Request bodies, refused with 413 while they are read: Twilio webhooks, console forms and
    # the unsubscribe POST, the JSON API, CSV uploads (console and API paths ending /import).
    http_webhook_max_bytes: int = Field(default=64 * 1024, ge=1024)
    http_form_max_bytes: int = Field(default=64 * 1024, ge=1024)
    http_api_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    http_upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Hardening: slow clients (web/slow_clients.py). A request's headers must arrive within
    # HEADER_TIMEOUT of the connection (or the previous response), its body within BODY_TIMEOUT
    # of the headers; beyond MAX_CONNECTIONS open connections requests get 503.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    http_body_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    http_max_connections: int = Field(default=200, ge=1)
    # Proxies (IPs or networks, comma-separated; "*" any) whose X-Forwarded-For/-Proto are
    # believed; empty: none, the TCP peer is the client.
    trusted_proxies: str = ""
    # Signs unsubscribe links; required by `serve` when NOTIFIER_PUBLIC_BASE_URL is set.
    # At least 32 characters, not guessable (domain/secret_keys.py); `notifier secret generate`.
    secret_key: SecretStr | None = None
    # Console sessions (kept in the database) end after this long without a request, and after
    # this long in all; sign-in failures counted per (account, client IP) and per client IP.
    console_idle_minutes: float = Field(default=30.0, gt=0)
    console_session_hours: float = Field(default=12.0, gt=0)
    sign_in_failures_per_account: int = Field(default=5, ge=1)
    sign_in_failures_per_ip: int = Field(default=20, ge=1)
    sign_in_window_minutes: float = Field(default=15.0, gt=0)
    # Hardening: Swagger UI at /docs (from local assets; /redoc stays off). Off by default.
    api_docs: bool = False
    # Hardening: password checks (argon2id, 64 MiB each) at once; a sign-in beyond them waits
    # up to 3 s for a free one, then gets 429 with Retry-After.
    sign_in_checks_at_once: int = Field(default=2, ge=1, le=64)
    unsubscribe_mailto: str | None = None  # default: NOTIFIER_EMAIL_FROM
    # Who answers HELP from a number no patient has (a patient hears their clinic's name and
    # phone): default the only location's, else "Clinic closure alerts" and no phone.
    program_name: str | None = Field(default=None, min_length=1, max_length=60)
    help_phone: str | None = None  # E.164 or national (NOTIFIER_DEFAULT_REGION)
    # No texts in these local hours (location's zone) unless the broadcast is urgent; "off".
    quiet_hours: str = "21:00-08:00"
    templates_dir: Path | None = None
    default_region: str = Field(default="US", min_length=2, max_length=2)
    # At most this many texts per phone number in any rolling 7 days, across notices; 0 = no cap.
    sms_weekly_cap: int = Field(default=3, ge=0)

    # Delivery engine.
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    dispatch_batch_size: int = Field(default=100, ge=1, le=10_000)
    dispatch_concurrency: int = Field(default=16, ge=1, le=512)
    sms_rate_per_second: float = Field(default=10.0, gt=0)
    email_rate_per_second: float = Field(default=10.0, gt=0)
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    # A claimed delivery's lease; a live worker extends it every heartbeat while it works on it.
    lease_seconds: float = Field(default=120.0, gt=0)
    # Every process beats this often; one silent for worker_timeout_seconds is dead and any live
    # process hands its claimed deliveries back (checked with the provider before resending).
    heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)
    # Before each provider request: was the notice cancelled or replaced meanwhile? Asked of the
    # database at most this often (0: every time).
    last_look_seconds: float = Field(default=0.25, ge=0, le=10)
    worker_timeout_seconds: float = Field(default=10.0, gt=0)
    # Twilio queues at most ~10 h of a sender's traffic; longer broadcasts get a warning.
    sms_queue_window_seconds: float = Field(default=36000.0, gt=0)

    # Confidence before a mass send (issue 20). A broadcast to more than this many patients
    # waits for a second manager's approval (0: every broadcast does).
    approval_threshold: int = Field(default=50, ge=0)
    # The undo window: seconds between a broadcast's due time and its first provider request,
    # during which `notifier notice cancel` sends nothing.
    send_hold_seconds: float = Field(default=60.0, ge=0, le=3600)
    # The plan's cost estimate: per SMS segment and per email, in ``price_currency``.
    sms_price_per_segment: float = Field(default=0.0079, ge=0)
    email_price: float = Field(default=0.0, ge=0)
    price_currency: str = Field(default="USD", min_length=1, max_length=8)

    # Fleet rate (issue 25). On PostgreSQL all workers share one send timeline per sender; each
    # reserves this many seconds of it at a time (fewer database round trips, coarser sharing).
    rate_grant_seconds: float = Field(default=0.5, gt=0, le=10)
    # False: each process applies the rates alone (N workers send up to N × the rate).
    rate_shared: bool = True
    # Retries (issue 25): a transient failure is retried (capped, jittered backoff) for as long as
    # the message is useful (until the closure is over); an optional ceiling on attempts.
    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    # A channel whose provider fails this many requests in a row pauses its sends (none counted as
    # attempts) for breaker_pause_seconds, then probes with one; each failed probe doubles the
    # pause, up to NOTIFIER_RETRY_MAX_SECONDS. 0: never pause.
    breaker_failures: int = Field(default=10, ge=0)
    breaker_pause_seconds: float = Field(default=15.0, gt=0)

    # Receipts (status callbacks): taken in at once, applied in batches by the workers; a
    # report for a message not known yet is retried this long; applied ones are kept this many
    # days (a repeat finds its key). Deliveries still "sent" after reconcile_after_minutes
    # (0: never) are asked of the provider, again at most that often, for reconcile_for_hours.
    receipts_batch_size: int = Field(default=500, ge=1, le=10_000)
    receipts_unknown_wait_seconds: float = Field(default=60.0, ge=0)
    receipts_keep_days: float = Field(default=7.0, gt=0)
    receipts_reconcile_after_minutes: float = Field(default=30.0, ge=0)
    receipts_reconcile_for_hours: float = Field(default=72.0, gt=0)

    # Deliveries older than this lose their addresses and provider error texts (retention).
    retention_days: int = Field(default=90, ge=1, le=36_500)

    # Patients' replies (usecases/replies.py): a text unanswered this many business-hours minutes
    # is listed on the console's front page and counted in /metrics; the closure auto-reply is
    # on for a location unless switched off there, and off everywhere when this is false.
    reply_waiting_minutes: int = Field(default=30, ge=1, le=100_000)
    auto_reply: bool = True

    # Pretend the current time is this (the clock then runs forward): demos and end-to-end tests.
    now: datetime | None = None

    log_level: str = "INFO"
    # Operations (issue 17): "json" writes one JSON object per log line (notifier.logs).
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(f"{ENV_PREFIX}CONFIG_FILE", DEFAULT_CONFIG_FILE))
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file),
        )

    @model_validator(mode="after")
    def _timeouts_span_heartbeats(self) -> Settings:
        """A worker that missed one beat is not dead, and a lease outlives a missed beat."""
        for name, value in (
            ("WORKER_TIMEOUT_SECONDS", self.worker_timeout_seconds),
            ("LEASE_SECONDS", self.lease_seconds),
        ):
            if value < 2 * self.heartbeat_seconds:
                raise ValueError(
                    f"{ENV_PREFIX}{name} must be at least twice {ENV_PREFIX}HEARTBEAT_SECONDS "
                    f"({value:g} < 2 × {self.heartbeat_seconds:g})"
                )
        return self

    @field_validator("now")
    @classmethod
    def _now_is_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a UTC offset, e.g. 2025-02-18T18:00:00-05:00")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_parse(cls, value: str) -> str:
        try:
            QuietHours.parse(value)
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _help_phone_is_a_phone(self) -> Settings:
        if self.help_phone is not None:
            try:
                self.help_phone = normalize_phone(self.help_phone, self.default_region)
            except ValidationError as exc:
                raise ValueError(f"{ENV_PREFIX}HELP_PHONE: {exc}") from None
        return self

    @field_validator("secret_key")
    @classmethod
    def _secret_strong_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (problem := weakness(value.get_secret_value())):
            raise ValueError(problem)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        """Each entry an address or network, written as uvicorn parses it; "*" only alone."""
        if value.strip() in ("", "*"):
            return value.strip()
        entries = []
        for entry in (part.strip() for part in value.split(",")):
            try:
                if "/" in entry:
                    entries.append(str(ipaddress.ip_network(entry, strict=False)))
                else:
                    entries.append(str(ipaddress.ip_address(entry)))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.5,10.1.0.0/16; "
                    "or * alone for any)"
                ) from None
        return ",".join(entries)

    @field_validator("database_url")
    @classmethod
    def _sqlite_path_absolute(cls, value: str) -> str:
        """``sqlite:///var/x.db`` names one file, the one under the directory of the start."""
        prefix = "sqlite:///"
        path = value[len(prefix) :] if value.startswith(prefix) else None
        if path and not path.startswith(("/", ":memory:", "file:")):
            return f"{prefix}{Path.cwd() / path}"
        return value

    @field_validator("voice_voices")
    @classmethod
    def _is_voice_list(cls, value: str) -> str:
        try:
            parse_voices(value)
        except NotifierError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("twilio_from_numbers")
    @classmethod
    def _is_sender_pool(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_pool(value, 1.0)
            except NotifierError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("twilio_api_base_url", "public_base_url")
    @classmethod
    def _is_http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value


def unknown_variables(environ: dict[str, str] | None = None) -> dict[str, str | None]:
    """Each ``NOTIFIER_*`` variable no setting reads (in the environment, or in ``.env`` as the
    settings read it), with the closest known name (or None)."""
    if environ is None:
        dotenv = Path(str(Settings.model_config.get("env_file", ".env")))
        in_file = dotenv_values(dotenv) if dotenv.is_file() else {}
        environ = {k: v or "" for k, v in in_file.items()} | dict(os.environ)
    known = [name.upper() for name in Settings.model_fields]  # compared without the prefix
    found: dict[str, str | None] = {}
    for name in sorted(environ):
        upper = name.upper()
        bare = upper[len(ENV_PREFIX) :]
        if not upper.startswith(ENV_PREFIX) or bare in OTHER_VARIABLES or bare in known:
            continue
        close = difflib.get_close_matches(bare, known, n=1, cutoff=0.6)
        found[name] = ENV_PREFIX + close[0] if close else None
    return found


def _warn_unknown_variables() -> None:
    for name, close in unknown_variables().items():
        if name not in _warned:
            _warned.add(name)
            hint = f": did you mean {close}?" if close else ""
            log.warning("unknown setting %s is ignored%s", name, hint)


def load_settings(**overrides: Any) -> Settings:
    """Build and check the settings, turning pydantic's errors into one readable message;
    unknown ``NOTIFIER_*`` variables are warned about (once each) with the closest known name."""
    _warn_unknown_variables()
    try:
        settings = Settings(**overrides)
    except PydanticValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(
                f"{ENV_PREFIX}{field.upper()}: {error['msg']}" if field else error["msg"]
            )
        raise ConfigurationError("invalid settings:\n  " + "\n  ".join(problems)) from None
    return settings
