"""The ``notifier`` command line, split by command group; ``main`` is the entry point."""

from __future__ import annotations

from notifier.cli import admin, deliveries, imports, locations, notices, serve
from notifier.cli.root import main

__all__ = ["admin", "deliveries", "imports", "locations", "main", "notices", "serve"]
