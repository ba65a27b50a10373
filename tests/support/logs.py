"""Logging configured as ``notifier serve`` configures it, for the length of a test."""

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
