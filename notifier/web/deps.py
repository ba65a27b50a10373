"""Shared request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from notifier.bootstrap import App


def get_app(request: Request) -> App:
    app: App = request.app.state.app
    return app


Application = Annotated[App, Depends(get_app)]
