"""The patients list (consent per channel, addresses masked) and the CSV import."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from notifier.errors import NotFoundError, ValidationError
from notifier.usecases.csv_import import ImportReport
from notifier.web.console.auth import CsrfChecked, CurrentSignIn, Manager, SignedIn, actor_of
from notifier.web.console.pages import not_found, page
from notifier.web.deps import Application

router = APIRouter()
PAGE_SIZE = 100


@router.get("/patients")
def patients(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    location: str = "",
    page_number: Annotated[int, Query(alias="page")] = 1,
) -> Response:
    number = max(page_number, 1)
    try:
        actor = actor_of(request, sign_in)
        offset = (number - 1) * PAGE_SIZE
        rows, total = app.patients.page(actor, location or None, PAGE_SIZE, offset)
    except NotFoundError as exc:
        return not_found(request, app, sign_in, str(exc))
    return page(
        request,
        app,
        sign_in,
        "patients.html",
        rows=rows,
        total=total,
        page=number,
        pages=max(1, -(-total // PAGE_SIZE)),
        locations=app.locations.all(actor),
        chosen=location,
        channels=list(app.deps.channels),
    )


@router.get("/patients/import")
def import_page(
    request: Request, app: Application, sign_in: CurrentSignIn, user: Manager
) -> Response:
    return page(
        request,
        app,
        sign_in,
        "import.html",
        report=None,
        error=None,
        filename=None,
        columns=app.patients.csv_columns(),
    )


@router.post("/patients/import", dependencies=[CsrfChecked])
async def import_upload(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: Manager,
    file: Annotated[UploadFile, File()],
) -> Response:
    limit = app.settings.http_upload_max_bytes  # the file itself; the form around it has room
    data = await file.read(limit + 1)
    filename = Path(file.filename or "patients.csv").name
    error = None
    report: ImportReport | None = None
    if not data:
        error = "choose a CSV file to import"
    elif len(data) > limit:
        size = f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 2**10:g} KiB"
        error = f"the file is larger than {size}: split it"
    else:
        try:  # bytes: the import decodes them and reports undecodable ones by line
            report = await run_in_threadpool(
                app.patients.import_patients, actor_of(request, sign_in), io.BytesIO(data)
            )
        except ValidationError as exc:
            error = str(exc)
    return page(
        request,
        app,
        sign_in,
        "import.html",
        status=422 if error or (report and report.errors) else 200,  # as the API answers
        report=report,
        error=error,
        filename=filename,
        columns=app.patients.csv_columns(),
    )
