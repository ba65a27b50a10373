"""Voice calls through Twilio's official SDK (the Calls API).

A call is placed with our TwiML link (signed, expiring, no patient data: ``notifier.calls``)
and answering-machine detection that does not delay a person: ``MachineDetection=
DetectMessageEnd`` with ``AsyncAmd=true``, so the message starts as soon as anyone answers, and
when a voicemail's greeting ends Twilio tells us (``AsyncAmdStatusCallback``) and the call is
sent back to the start of the message (``redirect``), so the voicemail records all of it. The
call's final status (completed, busy, no-answer, failed) comes to the status callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import ClassVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from notifier.calls import CallLinks, links, status_url, twiml_url
from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.channels.sms import classify_rest_error
from notifier.clock import Clock, SystemClock
from notifier.domain.channels import AddressField, ChannelSpec, MessageFormat
from notifier.domain.deliveries import DeliveryState, Report
from notifier.settings import Settings


class VoiceChannel:
    spec: ClassVar[ChannelSpec] = ChannelSpec(
        "voice",
        "voice call",
        AddressField.PHONE,
        MessageFormat.SPOKEN,
        required_settings=("voice_from_number",),
        needs_settings=("twilio_account_sid", "twilio_auth_token", "public_base_url", "secret_key"),
        consent_field="voice_consent",
        csv_required=False,  # a patients CSV without voice_consent imports "no calls"
        rate_setting="voice_calls_per_second",
        quiet_hours=True,
        urgent_in_quiet_hours=False,  # the issue: "never outside allowed hours"
        # The call's final status (status callback), and who answered (answering machine
        # detection, reported as "human" or "machine"): the patient heard it, or their voicemail
        # recorded all of it.
        reports={
            "human": DeliveryState.DELIVERED,
            "machine": DeliveryState.DELIVERED,
            "completed": DeliveryState.DELIVERED,
            "busy": DeliveryState.UNDELIVERED,
            "no-answer": DeliveryState.UNDELIVERED,
            "failed": DeliveryState.FAILED,
            "canceled": DeliveryState.FAILED,
        },
        redial_reports=frozenset({"busy", "no-answer"}),
        redial_setting="voice_retries",
        redial_spacing_setting="voice_retry_minutes",
        served=True,
        by_default=False,  # a notice calls only when its channels name voice
    )

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        assert settings.twilio_auth_token is not None and settings.voice_from_number is not None
        signer = links(settings)
        assert signer is not None  # the spec needs NOTIFIER_SECRET_KEY
        self._links: CallLinks = signer
        self.settings = settings
        http = TwilioHttpClient(timeout=settings.twilio_timeout_seconds)
        # A non-empty environment: the SDK would otherwise read TWILIO_REGION/EDGE from os.environ.
        self.client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            http_client=http,
            environment={"NOTIFIER": "1"},
        )
        self.client.api.base_url = settings.twilio_api_base_url
        self.from_number = settings.voice_from_number
        self.link_lifetime = timedelta(minutes=settings.voice_link_minutes)
        self.clock: Clock = clock or SystemClock()

    def token(self, delivery_id: int, now: datetime) -> str:
        return self._links.make(delivery_id, now + self.link_lifetime)

    def send(self, message: OutgoingMessage) -> SendResult:
        token = self.token(message.delivery_id, self.clock.now())
        try:
            call = self.client.calls.create(
                to=message.to,
                from_=self.from_number,
                url=twiml_url(self.settings, token),
                method="POST",
                status_callback=status_url(self.settings),
                status_callback_method="POST",
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=twiml_url(self.settings, token, "machine"),
                async_amd_status_callback_method="POST",
            )
        except TwilioRestException as exc:
            raise classify_rest_error(exc) from None
        except requests.ConnectionError as exc:
            raise ChannelError(
                f"could not reach Twilio: {type(exc).__name__}", code="connection", ambiguous=True
            ) from None
        except requests.Timeout:
            raise ChannelError(
                "Twilio did not answer in time", code="timeout", ambiguous=True
            ) from None
        return SendResult(provider_id=str(call.sid), segments=1)

    def find_sent(self, message: OutgoingMessage, since: datetime) -> SendResult | None:
        """A call to this number from our number placed since ``since``."""
        try:
            calls = self.client.calls.list(
                to=message.to, from_=self.from_number, start_time_after=since, limit=20
            )
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(
                f"could not check Twilio for an earlier call: {type(exc).__name__}",
                code="reconcile",
            ) from None
        for call in calls:
            created = call.date_created
            if created is None or created >= since:
                return SendResult(str(call.sid), 1)
        return None

    def redirect(self, call_sid: str, url: str) -> None:
        """Send a live call to new TwiML (a voicemail's greeting ended: start the message over)."""
        try:
            self.client.calls(call_sid).update(url=url, method="POST")
        except (TwilioException, requests.RequestException) as exc:
            raise ChannelError(
                f"could not redirect the call: {type(exc).__name__}", code="redirect"
            ) from None

    def reports(
        self, provider_ids: Sequence[str], sent: tuple[date, date] | None = None
    ) -> list[Report]:
        """Each call's status as Twilio has it now, one fetch per call (few calls go unreported:
        ``sent`` is not needed); a call Twilio no longer has is left out."""
        found = []
        for sid in provider_ids:
            try:
                call = self.client.calls(sid).fetch()
            except TwilioRestException as exc:
                if exc.status == 404:
                    continue
                raise classify_rest_error(exc) from None
            except requests.RequestException as exc:
                raise ChannelError(
                    f"could not ask Twilio about a call: {type(exc).__name__}", code="reconcile"
                ) from None
            found.append(Report(self.spec.name, sid, str(call.status or "")))
        return found

    def close(self) -> None:
        session = getattr(self.client.http_client, "session", None)
        if session is not None:
            session.close()
