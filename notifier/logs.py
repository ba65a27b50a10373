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

import logging
import re
import sys
from typing import Any

from notifier.domain.contacts import mask_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached" is how a long dispatch run looks.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
