"""The fast lane for message status callbacks: two or three per text, so most of what Twilio
sends us. A genuine one (a complete url-encoded form whose ``X-Twilio-Signature`` checks out)
is taken into the receipts intake here, without the framework's routing, dependency solving and
multipart parser (about two thirds of a callback's CPU on the routed path). Anything else (no
or a wrong signature, an unconfigured service, another content type, a form Twilio would not
send) goes on, body replayed, to the routed endpoint ``notifier.web.webhooks.status_callback``,
which answers and logs it as before.

It sits innermost among our middlewares, so the body limits, forwarded headers and security
headers apply to it as to every route.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twilio.request_validator import RequestValidator, compare

from notifier import metrics
from notifier.delivery.intake import Intake
from notifier.settings import Settings
from notifier.web.webhooks import STATUS_PATH, status_report

FORM = b"application/x-www-form-urlencoded"
EMPTY = [(b"content-length", b"0")]


class StatusLane:
    """ASGI middleware: takes genuine status callbacks, hands everything else on."""

    def __init__(self, app: ASGIApp, settings: Settings, intake: Intake) -> None:
        self.app = app
        self.intake = intake
        token = settings.twilio_auth_token
        base = settings.public_base_url
        self.url = (base + STATUS_PATH) if base else None
        self.validator = RequestValidator(token.get_secret_value()) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != STATUS_PATH
            or scope["method"] != "POST"
            or scope["query_string"]
            or self.validator is None
            or self.url is None
        ):
            await self.app(scope, receive, send)
            return
        body, finished = await _read(receive)
        fields = _fields(scope, body) if finished else None
        if fields is None:
            await self.app(scope, _replay(body, finished, receive), send)
            return
        signature, params = fields
        # The URL as configured (the routed endpoint also tries it with the default port added).
        if not compare(self.validator.compute_signature(self.url, params), signature):
            await self.app(scope, _replay(body, finished, receive), send)
            return
        metrics.webhook_request(STATUS_PATH, "accepted")
        report, status = status_report(params), 200
        if report is not None:
            try:
                await self.intake.store(report)
            except Exception:  # logged by the intake; Twilio retries a callback that failed
                status = 503
        await send({"type": "http.response.start", "status": status, "headers": list(EMPTY)})
        await send({"type": "http.response.body", "body": b""})


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The whole body, and whether it came to its end (False: the client went away)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _fields(scope: Scope, body: bytes) -> tuple[str, dict[str, str]] | None:
    """The signature and the form, if this is a plain signed form with each field once."""
    signature = content_type = None
    for name, value in scope["headers"]:
        if name == b"x-twilio-signature":
            signature = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
    if not signature or content_type != FORM:
        return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    params = dict(pairs)
    return (signature, params) if len(params) == len(pairs) else None


def _replay(body: bytes, finished: bool, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the client's own."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": not finished}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
