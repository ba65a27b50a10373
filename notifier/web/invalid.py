"""The 422 for a request FastAPI could not validate, made so that it can always be sent.

FastAPI's own answer echoes each error's ``input``: a lone surrogate (``"\\ud800"``) cannot be
encoded and ``1e999`` (infinity) is not JSON, so both used to become a 500. Here the input is
never echoed; what is reported (the field's path, pydantic's message) is made printable; and
``field`` names the first field at fault, as our own 422s do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

_SOURCES = {"body", "query", "path", "header", "cookie"}
_SHOWN = 200  # characters of a name or message reported


def _printable(value: object) -> str | int:
    """``value`` as JSON can always carry it: an int, or text without lone surrogates."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:_SHOWN]


def problems(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [_printable(part) for part in error.get("loc", ())],
            "msg": _printable(error.get("msg", "invalid")),
            "type": _printable(error.get("type", "value_error")),
        }
        for error in errors
    ]


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = problems(exc.errors())
    field = None
    for problem in detail:
        names = [str(p) for p in problem["loc"] if p not in _SOURCES and not isinstance(p, int)]
        if names:
            field = ".".join(names)
            break
    return JSONResponse({"detail": detail, "field": field}, status_code=422)
