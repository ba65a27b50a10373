"""Twilio's voice webhooks: a call's TwiML, its keypresses, answering-machine detection and its
status callbacks.

Every request must carry a genuine ``X-Twilio-Signature`` (403 otherwise, as for texts), and the
TwiML links a genuine, unexpired token of ours naming the delivery (``notifier.calls``): the URL
holds no phone number, name or words. A link that is not genuine or has expired gets a polite
hang-up, never an error the patient would hear.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from twilio.twiml.voice_response import VoiceResponse

from notifier.bootstrap import App
from notifier.calls import twiml_url
from notifier.channels.base import ChannelError
from notifier.channels.voice import VoiceChannel
from notifier.delivery.intake import Intake
from notifier.domain.calls import REPEAT_KEY, STOP_KEY, answered_by, phrases
from notifier.domain.deliveries import Report
from notifier.usecases.calls import Script
from notifier.web.deps import Application
from notifier.web.webhooks import SignedForm

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])
VOICE = VoiceChannel.spec.name
TWIML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/xml": {}}, "description": "TwiML"},
    403: {"description": "missing or wrong X-Twilio-Signature"},
}
_ANSWERS = {
    "human": "answered by a person: told at once",
    "machine": "answered by a voicemail: the whole message left after the greeting",
}


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def _hang_up() -> Response:
    response = VoiceResponse()
    response.hangup()
    return _twiml(response)


def _say(response: VoiceResponse, script: Script, text: str) -> None:
    response.say(text, language=script.voice.language, voice=script.voice.voice)


def _message(app: App, token: str, script: Script, listen: bool) -> Response:
    """The message, then (for a person) the menu while listening for one key."""
    response = VoiceResponse()
    words = phrases(script.language)
    if listen:
        gather = response.gather(
            num_digits=1, action=twiml_url(app.settings, token, "keys"), method="POST", timeout=5
        )
        _say(gather, script, script.text)
        _say(gather, script, words.menu)
    else:
        _say(response, script, script.text)
    _say(response, script, words.goodbye)
    response.hangup()
    return _twiml(response)


def _script(app: App, token: str) -> Script | None:
    delivery_id = app.calls.delivery_of(token)
    if delivery_id is None:
        log.warning("call link not genuine or expired", extra={"action": "call_link_refused"})
        return None
    return app.calls.script(delivery_id)


@router.post("/voice/{token}", responses=TWIML, response_class=Response)
def call_answered(token: str, form: SignedForm, app: Application) -> Response:
    """The call was answered: the message at once (answering-machine detection runs alongside),
    with the menu."""
    script = _script(app, token)
    return _hang_up() if script is None else _message(app, token, script, listen=True)


@router.post("/voice/{token}/voicemail", responses=TWIML, response_class=Response)
def voicemail(token: str, form: SignedForm, app: Application) -> Response:
    """A voicemail's greeting ended: the whole message from the start, then goodbye."""
    script = _script(app, token)
    return _hang_up() if script is None else _message(app, token, script, listen=False)


@router.post("/voice/{token}/keys", responses=TWIML, response_class=Response)
def key_pressed(token: str, form: SignedForm, app: Application) -> Response:
    """1: the message again. 9: no more calls (a voice opt-out). Anything else: goodbye."""
    script = _script(app, token)
    if script is None:
        return _hang_up()
    digits = _field(form, "Digits")[:1]
    if digits == REPEAT_KEY:
        return _message(app, token, script, listen=True)
    response = VoiceResponse()
    if digits == STOP_KEY:
        app.calls.stop_calls(script.delivery_id, _field(form, "CallSid"))
        _say(response, script, phrases(script.language).stopped)
    else:
        _say(response, script, phrases(script.language).goodbye)
    response.hangup()
    return _twiml(response)


@router.post(
    "/voice/{token}/machine",
    responses={403: {"description": "missing or wrong X-Twilio-Signature"}},
    response_class=Response,
)
async def machine_detected(token: str, form: SignedForm, request: Request) -> Response:
    """Answering-machine detection's verdict: recorded on the delivery (person or voicemail);
    when a voicemail's greeting has ended, the call goes back to the start of the message so
    the recording holds all of it."""
    app: App = request.app.state.app
    sid, verdict = _field(form, "CallSid"), _field(form, "AnsweredBy")
    who = answered_by(verdict)
    if sid and who in _ANSWERS:
        await _take(request, Report(VOICE, sid, who, None, _ANSWERS[who]))
    if who == "machine" and verdict.startswith("machine_end") and app.calls.delivery_of(token):
        try:
            url = twiml_url(app.settings, token, "voicemail")
            await run_in_threadpool(_redirect, app, sid, url)
        except ChannelError as error:
            log.warning(
                "could not restart the message for a voicemail: %s",
                error.message,
                extra={"action": "voicemail_redirect_failed"},
            )
    return Response(status_code=200)


def _redirect(app: App, call_sid: str, url: str) -> None:
    channel = VoiceChannel(app.settings, app.clock)
    try:
        channel.redirect(call_sid, url)
    finally:
        channel.close()


@router.post(
    "/calls/status",
    responses={
        403: {"description": "missing or wrong X-Twilio-Signature"},
        503: {"description": "the report could not be stored: Twilio retries"},
    },
    response_class=Response,
)
async def call_status(form: SignedForm, request: Request) -> Response:
    """A call's final status (completed, busy, no-answer, failed, canceled): stored in the
    receipts intake before the 200, applied by a worker (busy and no-answer are redialled)."""
    sid, status = _field(form, "CallSid"), _field(form, "CallStatus")
    if sid and status:
        code = _field(form, "ErrorCode") or None
        if not await _take(request, Report(VOICE, sid, status, code, None)):
            return Response(status_code=503)
    return Response(status_code=200)


async def _take(request: Request, report: Report) -> bool:
    intake: Intake = request.app.state.intake
    try:
        await intake.store(report)
    except Exception:  # logged by the intake; Twilio retries a callback that failed
        return False
    return True
