"""Logging: one line per event, structured fields appended as key=value, no patient data.

Addresses are masked where they are logged (``contacts.mask_*``; a provider's error text is
masked when its ``ChannelError`` is made). Third-party loggers that print URLs, query strings or
request and response data (``…/Messages.json?To=%2B1540…``) stay at WARNING whatever
``NOTIFIER_LOG_LEVEL`` says: their DEBUG and INFO lines would carry phone numbers.
"""

from __future__ import annotations

import logging
import sys

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


class KeyValueFormatter(logging.Formatter):
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
