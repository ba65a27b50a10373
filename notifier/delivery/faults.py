"""Fault boundaries: one broadcast or one delivery that breaks is marked failed with a reason a
person can read, logged once (masked), and everything else goes on.

A database that is briefly unavailable (locked, restarting, a dropped connection) is not the
broadcast's fault: those errors leave the work where it was, to be picked up on the next tick.
"""

from __future__ import annotations

import logging
import traceback

from sqlalchemy import exc as sql

from notifier.domain.contacts import mask_text

_TRANSIENT = (sql.OperationalError, sql.TimeoutError, sql.DisconnectionError, sql.InterfaceError)
MAX_REASON = 500


def is_transient(error: BaseException) -> bool:
    """The database could not be reached or was busy: try again later, blame nobody."""
    return isinstance(error, _TRANSIENT)


def reason(doing: str, error: BaseException) -> str:
    """``doing``, then the error's type and message with every phone and email masked."""
    text = f"{doing}: {type(error).__name__}: {mask_text(str(error))}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def log_failure(log: logging.Logger, message: str, error: BaseException, **extra: object) -> None:
    """One ERROR line with the masked traceback (an exception's text may quote patient data)."""
    trace = "".join(traceback.format_exception(error)).rstrip()
    log.error("%s\n%s", message, mask_text(trace), extra=extra)
