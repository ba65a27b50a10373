"""Logging configured as ``notifier serve`` configures it, for the length of a test, and the
lines it writes captured."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from notifier.logs import configure_logging


@contextmanager
def configured_logging(level: str, log_format: str = "text") -> Iterator[logging.Formatter]:
    """``configure_logging(level, log_format)``; yields the product's formatter and gives the
    root logger and every logger's level back afterwards."""
    root = logging.getLogger()
    saved = (root.level, root.handlers[:])
    levels = {
        name: lg.level
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    configure_logging(level, log_format)
    formatter = root.handlers[0].formatter
    assert formatter is not None
    try:
        yield formatter
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, lg in logging.Logger.manager.loggerDict.items():
            if isinstance(lg, logging.Logger):
                lg.setLevel(levels.get(name, logging.NOTSET))


# Loggers of the test's own peers (the sandbox servers): they may print what they received.
PEER_LOGGERS = ("mail.log", "notifier_sandbox")


class LogLines(logging.Handler):
    """Every record that reaches the root logger, formatted by the product's own handler."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(PEER_LOGGERS):
            self.lines.append(self.format(record))


@contextmanager
def captured_log(level: str, log_format: str = "text") -> Iterator[LogLines]:
    """``configured_logging(level, log_format)`` with every line it writes kept."""
    with configured_logging(level, log_format) as formatter:
        capture = LogLines(formatter)
        logging.getLogger().addHandler(capture)
        yield capture
