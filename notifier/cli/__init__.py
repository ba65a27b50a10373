"""The ``notifier`` command line, split by command group; ``main`` is the entry point."""

from __future__ import annotations

from notifier.cli import (
    accounts,
    admin,
    audit,
    deliveries,
    imports,
    locations,
    notices,
    replies,
    retention,
    serve,
)
from notifier.cli.root import main

__all__ = [
    "accounts",
    "admin",
    "audit",
    "deliveries",
    "imports",
    "locations",
    "main",
    "notices",
    "replies",
    "retention",
    "serve",
]
