"""The ``notifier`` command line, split by command group; ``main`` is the entry point."""

from __future__ import annotations

from notifier.cli import accounts, admin, deliveries, imports, locations, notices, serve
from notifier.cli.root import main

__all__ = ["accounts", "admin", "deliveries", "imports", "locations", "main", "notices", "serve"]
