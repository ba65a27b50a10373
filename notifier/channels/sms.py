"""SMS through Twilio's official SDK."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, ClassVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.channels.twilio_http import PooledHttpClient
from notifier.clock import Clock
from notifier.domain.channels import AddressField, ChannelSpec, MessageFormat
from notifier.domain.deliveries import DeliveryState, Report
from notifier.settings import Settings

log = logging.getLogger(__name__)

# Twilio errors that retrying cannot fix (invalid, unsubscribed, unroutable or non-mobile numbers).
PERMANENT_CODES = frozenset(
    {21211, 21212, 21408, 21602, 21603, 21604, 21606, 21610, 21612, 21614, 21617, 21635}
)
RETRYABLE_HTTP = frozenset({429, 500, 502, 503, 504})
# The SDK's keyword for a sender → the Messages API's form field.
_FORM_NAMES = {"from_": "From", "messaging_service_sid": "MessagingServiceSid"}
# A create's headers, copied per request: the SDK adds its own to the dict it is given.
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
LIST_PAGE = 1000  # messages per page of a list (Twilio's most)
PAGE_WORTH = 10  # a listed page must find this many asked-about messages to beat fetching them


class SmsChannel:
    spec: ClassVar[ChannelSpec] = ChannelSpec(
        "sms",
        "SMS",
        AddressField.PHONE,
        MessageFormat.TEXT,
        required_settings=(
            "twilio_account_sid",
            "twilio_auth_token",
            "twilio_from_number|twilio_from_numbers|twilio_messaging_service_sid",
        ),
        senders_setting="twilio_from_numbers",
        rate_setting="sms_rate_per_second",
        cap_setting="sms_weekly_cap",
        price_setting="sms_price_per_segment",
        quiet_hours=True,
        consent_field="sms_consent",
        # Twilio's MessageStatus in status callbacks; queued, sending, accepted change nothing.
        reports={
            "sent": DeliveryState.SENT,
            "delivered": DeliveryState.DELIVERED,
            "undelivered": DeliveryState.UNDELIVERED,
            "failed": DeliveryState.FAILED,
        },
        opt_out_codes=frozenset({"21610"}),  # the number texted STOP to Twilio
        # Not a mobile number (21614), a landline or unreachable carrier (30006): a call may reach.
        curable_codes=frozenset({"21614", "30006"}),
        max_characters=1600,  # Twilio refuses a longer body with error 21617
    )

    def __init__(
        self, settings: Settings, clock: Clock | None = None, pool_size: int | None = None
    ) -> None:
        # ``clock``: taken as every channel's is; Twilio dates its own messages.
        del clock
        assert settings.twilio_auth_token is not None
        # One kept-alive connection per sending thread: a smaller pool opens and throws away
        # connections (measured: about a third of the throughput lost).
        http = PooledHttpClient(
            settings.twilio_api_base_url,
            settings.twilio_timeout_seconds,
            pool_size or settings.dispatch_concurrency,
        )
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
        self._messages_uri = f"/Accounts/{settings.twilio_account_sid}/Messages.json"
        self.from_number = settings.twilio_from_number
        self.messaging_service = settings.twilio_messaging_service_sid
        self.status_callback = (
            f"{settings.public_base_url}/webhooks/twilio/status"
            if settings.public_base_url
            else None
        )

    def send(self, message: OutgoingMessage) -> SendResult:
        form = {"To": message.to, "Body": message.text, "StatusCallback": self.status_callback}
        form |= {_FORM_NAMES[name]: value for name, value in self._sender(message).items()}
        try:
            # What ``client.messages.create`` sends, through the SDK's own request and error
            # handling, without building the ``MessageInstance`` we would read two fields of
            # (about a tenth of the SDK's CPU per text).
            created = self.client.api.v2010.create(
                "POST", self._messages_uri, data=form, headers=dict(_FORM_HEADERS)
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
        return SendResult(
            provider_id=str(created["sid"]), segments=_int_or_none(created.get("num_segments"))
        )

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
            sender = self._sender(message)
            if (
                candidate.body == message.text
                and (
                    candidate.from_ == sender.get("from_")
                    or candidate.messaging_service_sid == sender.get("messaging_service_sid")
                )
                and (created is None or created >= since)
            ):
                return SendResult(candidate.sid, _int_or_none(candidate.num_segments))
        return None

    def _sender(self, message: OutgoingMessage) -> dict[str, str]:
        """From the pool's number chosen for this patient, else the Messaging Service (Twilio
        picks the number), else the one From number."""
        if message.sender:
            return {"from_": message.sender}
        if self.messaging_service:
            return {"messaging_service_sid": self.messaging_service}
        assert self.from_number is not None  # the spec requires one of the three
        return {"from_": self.from_number}

    def reports(
        self, provider_ids: Sequence[str], sent: tuple[date, date] | None = None
    ) -> list[Report]:
        """Each message's status as Twilio has it now (Messages API). Many at once by listing
        the days they were ``sent`` on, 1,000 a page, for as long as the pages find enough of
        them to beat one fetch each; the rest one fetch per message. A message Twilio no longer
        has (404) is left out."""
        found: dict[str, Report] = {}
        if sent is not None and len(provider_ids) >= PAGE_WORTH:
            found = self._listed(set(provider_ids), sent)
        for sid in provider_ids:
            if sid in found:
                continue
            try:
                message = self.client.messages(sid).fetch()
            except TwilioRestException as exc:
                if exc.status == 404:
                    continue
                raise classify_rest_error(exc, self._http.last_headers()) from None
            except requests.RequestException as exc:
                raise ChannelError(
                    f"could not ask Twilio about a message: {type(exc).__name__}", code="reconcile"
                ) from None
            found[sid] = self._report(message)
        return [found[sid] for sid in provider_ids if sid in found]

    def _listed(self, wanted: set[str], sent: tuple[date, date]) -> dict[str, Report]:
        """The ``wanted`` messages found by listing the days they were sent on (Twilio lists by
        day, newest first), reading at most one page per ``PAGE_WORTH`` messages wanted."""
        first, last = sent
        found: dict[str, Report] = {}
        pages, most = 1, max(1, len(wanted) // PAGE_WORTH)
        try:
            page: Any = self.client.messages.page(
                date_sent_after=first.isoformat(),  # "YYYY-MM-DD": the whole day, as documented
                date_sent_before=last.isoformat(),
                page_size=LIST_PAGE,
            )
            while page is not None:
                for message in page:
                    if message.sid in wanted:
                        found[message.sid] = self._report(message)
                if len(found) == len(wanted) or pages >= most:
                    break
                page, pages = page.next_page(), pages + 1
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(
                f"could not list messages at Twilio: {type(exc).__name__}", code="reconcile"
            ) from None
        return found

    def _report(self, message: Any) -> Report:
        code = message.error_code
        return Report(
            self.spec.name,
            message.sid,
            str(message.status or ""),
            str(code) if code else None,
            message.error_message,
        )

    def close(self) -> None:
        self._http.close()


def classify_rest_error(
    exc: TwilioRestException, headers: Mapping[str, str] | None = None
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
