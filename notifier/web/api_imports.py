"""CSV imports over the API: ``POST /api/v1/patients/import`` and ``/appointments/import``.

The body is the CSV file itself (``Content-Type: text/csv``), read only after the bearer token
is checked. 200 with the report when every row landed; 422 with the same report when any row
was rejected (the CLI's exit status 4); 422 with ``detail`` when the header is wrong and
nothing was imported.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from notifier.domain.actors import Actor
from notifier.usecases.csv_import import ImportReport, RowError, Source
from notifier.web.api import TokenActor, require_token
from notifier.web.deps import Application

router = APIRouter(prefix="/api/v1", tags=["api"], dependencies=[Depends(require_token)])


class RowErrorOut(BaseModel):
    line: int = Field(description="the line of the file the row ends on")
    external_id: str
    field: str | None = Field(description="the column at fault, when one is")
    reason: str
    text: str = Field(examples=["patients.csv:12 (p12): first_name: 101 characters, at most 100"])


class ImportReportOut(BaseModel):
    created: int
    updated: int
    imported: int
    rejected: int
    errors: list[RowErrorOut]
    channels_off: int = Field(description="bad phones or emails left out of imported rows")
    kept: list[RowErrorOut] = Field(
        description="rows imported with a bad phone or email left out: what, and what was kept"
    )

    @classmethod
    def of(cls, report: ImportReport, filename: str) -> ImportReportOut:
        def out(e: RowError) -> RowErrorOut:
            return RowErrorOut(
                line=e.line,
                external_id=e.external_id,
                field=e.field,
                reason=e.reason,
                text=e.describe(filename),
            )

        return cls(
            created=report.created,
            updated=report.updated,
            imported=report.imported,
            rejected=len(report.errors),
            errors=[out(e) for e in report.errors],
            channels_off=report.channels_off,
            kept=[out(e) for e in report.kept],
        )


_CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad API token"},
    422: {"model": ImportReportOut, "description": "some rows rejected (or a wrong header)"},
}


async def _import(
    request: Request,
    actor: Actor,
    run: Callable[[Actor, Source], ImportReport],
    filename: str,
) -> JSONResponse:
    data = await request.body()
    report = await run_in_threadpool(run, actor, io.BytesIO(data))
    body = ImportReportOut.of(report, filename).model_dump()
    return JSONResponse(body, status_code=422 if report.errors else 200)


@router.post(
    "/patients/import",
    response_model=ImportReportOut,
    responses=_RESPONSES,
    openapi_extra=_CSV_BODY,
)
async def import_patients(request: Request, app: Application, actor: TokenActor) -> JSONResponse:
    """Upsert patients by external_id from a CSV body (the columns of `notifier patients
    import`); each rejected row is reported with its line and field."""
    return await _import(request, actor, app.patients.import_patients, "patients.csv")


@router.post(
    "/appointments/import",
    response_model=ImportReportOut,
    responses=_RESPONSES,
    openapi_extra=_CSV_BODY,
)
async def import_appointments(
    request: Request, app: Application, actor: TokenActor
) -> JSONResponse:
    """Upsert appointments by external_id from a CSV body (times in the location's zone)."""
    return await _import(request, actor, app.patients.import_appointments, "appointments.csv")
