"""Twilio webhooks: validate the signature → parse → act (anymail's shape).

Both answer 403 to a missing or wrong ``X-Twilio-Signature`` and change nothing. The signed URL
is ``NOTIFIER_PUBLIC_BASE_URL`` + the path (+ query), exactly what Twilio was given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from notifier import metrics
from notifier.bootstrap import App
from notifier.channels.sms import SmsChannel
from notifier.delivery.intake import Intake
from notifier.domain.deliveries import Report
from notifier.web.deps import Application

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])
STATUS_PATH = "/webhooks/twilio/status"  # also taken by the fast lane, notifier.web.status_lane


async def signed_form(request: Request) -> FormData:
    """The form Twilio posted, only if its signature is genuine (403 otherwise)."""
    app: App = request.app.state.app
    settings = app.settings
    signature = request.headers.get("X-Twilio-Signature", "")
    form = await request.form()
    token = settings.twilio_auth_token
    if not settings.public_base_url or token is None:
        log.warning(
            "Twilio webhook refused: NOTIFIER_PUBLIC_BASE_URL and NOTIFIER_TWILIO_AUTH_TOKEN "
            "are needed to check signatures",
            extra={"action": "webhook_unconfigured"},
        )
        metrics.webhook_request(request.url.path, "unconfigured")
        raise HTTPException(403, "webhook signatures cannot be checked: not configured")
    url = settings.public_base_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    if not signature or not RequestValidator(token.get_secret_value()).validate(
        url, form, signature
    ):
        log.warning(
            "Twilio webhook with a missing or wrong signature refused",
            extra={"action": "webhook_bad_signature", "path": request.url.path},
        )
        metrics.webhook_request(request.url.path, "bad_signature")
        raise HTTPException(403, "invalid X-Twilio-Signature")
    metrics.webhook_request(request.url.path, "accepted")
    return form


SignedForm = Annotated[FormData, Depends(signed_form)]
SMS = SmsChannel.spec.name  # Twilio's webhooks speak of the SMS channel


def _field(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def status_report(form: Mapping[str, object]) -> Report | None:
    """The report a message status callback carries (None without a message id or status)."""
    sid = _field(form, "MessageSid") or _field(form, "SmsSid")
    status = _field(form, "MessageStatus") or _field(form, "SmsStatus")
    if not (sid and status):
        return None
    code, detail = _field(form, "ErrorCode") or None, _field(form, "ErrorMessage") or None
    return Report(SMS, sid, status, code, detail)


@router.post(
    "/status",
    responses={
        403: {"description": "missing or wrong X-Twilio-Signature"},
        503: {"description": "the report could not be stored: Twilio retries"},
    },
    response_class=Response,
)
async def status_callback(form: SignedForm, request: Request) -> Response:
    """Twilio's message status callback (sent, delivered, undelivered, failed): stored in the
    receipts intake (group-committed with concurrent ones) before the 200, applied by a worker.
    Genuine ones usually take the fast lane (``notifier.web.status_lane``) instead."""
    report = status_report(form)
    if report is not None:
        intake: Intake = request.app.state.intake
        try:
            await intake.store(report)
        except Exception:  # logged by the intake; Twilio retries a callback that failed
            return Response(status_code=503)
    return Response(status_code=200)


@router.post(
    "/inbound",
    responses={
        200: {"content": {"application/xml": {}}, "description": "TwiML"},
        403: {"description": "missing or wrong X-Twilio-Signature"},
    },
    response_class=Response,
)
def inbound(form: SignedForm, app: Application) -> Response:
    """An SMS from a patient: STOP/START keywords change consent, HELP/INFO answers; any
    other text goes to its location's inbox (and may get the closure auto-reply)."""
    message_id = _field(form, "MessageSid") or _field(form, "SmsSid")
    reply = app.consent.reply(SMS, _field(form, "From"), _field(form, "Body"), message_id)
    if reply.keyword is None:  # a question, not a keyword: to the location's inbox
        app.replies.receive(
            SMS, _field(form, "From"), _field(form, "To"), _field(form, "Body"), message_id
        )
    twiml = MessagingResponse()
    if reply.answer is not None:
        twiml.message(reply.answer)
    return Response(str(twiml), media_type="application/xml")
