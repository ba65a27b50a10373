"""The actors tests act as: the operator (every location), unless a test scopes one."""

from __future__ import annotations

from notifier.domain.actors import Actor

OPERATOR = Actor.operator()
