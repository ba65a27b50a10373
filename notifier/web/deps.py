"""Shared request dependencies."""

from __future__ import annotations

from fastapi import Request

from notifier.bootstrap import App


def get_app(request: Request) -> App:
    app: App = request.app.state.app
    return app
