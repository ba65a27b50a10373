"""SMS through Twilio's official SDK."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, ClassVar

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.domain.channels import AddressField, ChannelSpec, MessageFormat
from notifier.domain.deliveries import DeliveryState
from notifier.settings import Settings

log = logging.getLogger(__name__)

# Twilio errors that retrying cannot fix (invalid, unsubscribed, unroutable or non-mobile numbers).
PERMANENT_CODES = frozenset(
    {21211, 21212, 21408, 21602, 21603, 21604, 21606, 21610, 21612, 21614, 21617, 21635}
)
RETRYABLE_HTTP = frozenset({429, 500, 502, 503, 504})


class _HeaderKeepingHttpClient(TwilioHttpClient):
    """Remembers each thread's last response headers: the SDK drops Retry-After on errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._local = threading.local()

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._local.headers = {}
        response = super().request(*args, **kwargs)
        self._local.headers = dict(response.headers or {})
        return response

    def last_headers(self) -> dict[str, str]:
        return getattr(self._local, "headers", {})


class SmsChannel:
    spec: ClassVar[ChannelSpec] = ChannelSpec(
        "sms",
        "SMS",
        AddressField.PHONE,
        MessageFormat.TEXT,
        required_settings=("twilio_account_sid", "twilio_auth_token", "twilio_from_number"),
        weekly_cap=True,
        quiet_hours=True,
        # Twilio's MessageStatus in status callbacks; queued, sending, accepted change nothing.
        reports={
            "sent": DeliveryState.SENT,
            "delivered": DeliveryState.DELIVERED,
            "undelivered": DeliveryState.UNDELIVERED,
            "failed": DeliveryState.FAILED,
        },
        opt_out_codes=frozenset({"21610"}),  # the number texted STOP to Twilio
        max_characters=1600,  # Twilio refuses a longer body with error 21617
    )

    def __init__(self, settings: Settings, pool_size: int | None = None) -> None:
        assert settings.twilio_auth_token is not None and settings.twilio_from_number is not None
        http = _HeaderKeepingHttpClient(timeout=settings.twilio_timeout_seconds)
        # One kept-alive connection per sending thread: a smaller pool makes requests open and
        # throw away connections (measured: about a third of the throughput lost).
        size = pool_size or settings.dispatch_concurrency
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=size)
        http.session.mount("https://", adapter)
        http.session.mount("http://", adapter)
        # A non-empty environment: the SDK would otherwise read TWILIO_REGION/EDGE from os.environ
        # and rewrite our base URL.
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=http,
            environment={"NOTIFIER": "1"},
        )
        self.client.api.base_url = settings.twilio_api_base_url
        self._http = http
        self.from_number = settings.twilio_from_number
        self.status_callback = (
            f"{settings.public_base_url}/webhooks/twilio/status"
            if settings.public_base_url
            else None
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        try:
            created = self.client.messages.create(
                to=message.to,
                from_=self.from_number,
                body=message.text,
                status_callback=self.status_callback,
            )
        except TwilioRestException as exc:
            raise classify_rest_error(exc, self._http.last_headers()) from None
        except requests.ConnectionError as exc:
            # Refused before a byte went out: safe to resend. Anything else may have reached Twilio.
            refused = _is_connect_failure(exc)
            raise ChannelError(
                f"could not reach Twilio: {type(exc).__name__}",
                code="connection",
                ambiguous=not refused,
            ) from None
        except requests.Timeout:
            raise ChannelError(
                "Twilio did not answer in time", code="timeout", ambiguous=True
            ) from None
        return SendResult(provider_id=created.sid, segments=_int_or_none(created.num_segments))

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        """Listed by To only: a message Twilio still holds as ``queued`` has no date_sent, so a
        DateSent filter would miss exactly the ones a crash leaves behind."""
        try:
            candidates = self.client.messages.list(to=message.to, page_size=50, limit=200)
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(
                f"could not check Twilio for an earlier send: {type(exc).__name__}",
                code="reconcile",
            ) from None
        for candidate in candidates:
            created = candidate.date_created
            if (
                candidate.body == message.text
                and candidate.from_ == self.from_number
                and (created is None or created >= since)
            ):
                return SendResult(candidate.sid, _int_or_none(candidate.num_segments))
        return None

    def close(self) -> None:
        session = getattr(self.client.http_client, "session", None)
        if session is not None:
            session.close()


def classify_rest_error(
    exc: TwilioRestException, headers: dict[str, str] | None = None
) -> ChannelError:
    code = exc.code if isinstance(exc.code, int) else None
    text = str(exc.msg).removeprefix("Unable to create record: ")
    retry_after = _retry_after((headers or {}).get("Retry-After"))
    if exc.status in RETRYABLE_HTTP:
        return ChannelError(
            f"Twilio HTTP {exc.status}: {text}",
            code=str(code or exc.status),
            # 429s are never processed; a 5xx may have been.
            ambiguous=exc.status != 429,
            retry_after=retry_after,
        )
    permanent = code in PERMANENT_CODES or (400 <= exc.status < 500 and exc.status != 408)
    return ChannelError(
        f"Twilio refused the message ({code}): {text}",
        code=str(code or exc.status),
        permanent=permanent,
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the delta-seconds form Twilio uses)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
