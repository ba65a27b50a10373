"""Logging: one line per event, structured fields appended as key=value, no patient data.

Addresses are masked where they are logged (``contacts.mask_*``; a provider's error text is
masked when its ``ChannelError`` is made). Third-party loggers that print URLs, query strings or
request and response data (``…/Messages.json?To=%2B1540…``) stay at WARNING whatever
``NOTIFIER_LOG_LEVEL`` says: their DEBUG and INFO lines would carry phone numbers.

Whatever a message, an exception or a traceback quotes is passed through ``scrub`` by the
formatter, the last line of defence: a database's own words (PostgreSQL's ``DETAIL: Key
(channel, address)=(sms, +1540…) already exists``, ``Failing row contains (…)``) are dropped,
and any phone number or email left is masked. Every formatter calls it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from notifier.domain.contacts import mask_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# uvicorn repeats its message with terminal colours in this field: never worth a log line.
_STANDARD |= {"color_message"}
_NOISY = (
    "twilio.http_client",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
    "aiohttp",
    "aiosmtplib",
    "sqlalchemy",
    "multipart",
    "python_multipart",
)


# A database server's detail lines quote the row or key values (patients' data), whole.
_SERVER_DETAIL = re.compile(r"^(\s*(?:DETAIL|HINT|CONTEXT|WHERE):).*$", re.MULTILINE)
_FAILING_ROW = re.compile(r"(Failing row contains|Key \().*$", re.MULTILINE)


def scrub(text: str) -> str:
    """Log text without a database's quoted values, and with emails and phone numbers masked."""
    text = _SERVER_DETAIL.sub(r"\1 (withheld: it may quote patient data)", text)
    text = _FAILING_ROW.sub(r"\1 … (withheld)", text)
    return mask_text(text)


class KeyValueFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = scrub(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return scrub(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return scrub(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        return line


# The structured fields a JSON line may carry (``extra={...}`` of our log calls); anything else a
# record holds is left out, so a field added carelessly cannot put patient data in a log.
JSON_FIELDS = frozenset(
    {
        "action",
        "attempt",
        "broadcast_id",
        "broadcasts",
        "channel",
        "code",
        "conversation_id",  # patients' replies (usecases.replies): ids, never a body
        "count",
        "deliveries",
        "delivery_id",
        "error",  # an exception's type name
        "estimated_seconds",
        "from",  # masked where it is logged (contacts.mask_address), and again here
        "ip",  # the client's IP (sign-in limits), not a patient's
        "lag_seconds",
        "location",
        "message_id",
        "notice_id",
        "notices",
        "path",
        "pending_skipped",
        "provider_id",
        "role",
        "rows",
        "source",
        "stale",
        "to",  # masked where it is logged (contacts.mask_address), and again here
        "token_id",
        "url",
        "user_id",
        "worker",
        "workers",
    }
)


def _masked(value: Any) -> Any:
    """A field's value with every phone and email in its text masked (``scrub``)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_masked(v) for v in value]
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line (``NOTIFIER_LOG_FORMAT=json``), for log shippers: time (UTC),
    level, logger, message and exception scrubbed, and only the fields in ``JSON_FIELDS``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        for key in sorted(JSON_FIELDS & record.__dict__.keys()):
            line[key] = _masked(record.__dict__[key])
        if record.exc_info:
            line["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class _Housekeeping(logging.Filter):
    """APScheduler's per-run lines ("Running job …", "… executed successfully") every second
    are DEBUG for us: shown only when ``NOTIFIER_LOG_LEVEL=DEBUG``; warnings and errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


_HOUSEKEEPING = _Housekeeping()


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else KeyValueFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached" is how a long dispatch run looks.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    executors = logging.getLogger("apscheduler.executors.default")
    if _HOUSEKEEPING not in executors.filters:
        executors.addFilter(_HOUSEKEEPING)
