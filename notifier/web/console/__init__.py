"""The web console for clinic managers and ops: server-rendered pages under ``/console``.

Split by page group: sign-in (``signin``), notices (``notices``), the delivery log
(``deliveries``), patients (``patients``), locations (``locations``), patients' replies
(``inbox``) and the audit trail (``audit``); sessions, CSRF and
roles in ``auth``, page making in ``pages``. A thin layer over the same use cases as the CLI;
templates live in ``templates/web/``, apart from the message templates.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from notifier.web.console import (
    audit,
    deliveries,
    inbox,
    locations,
    notices,
    patients,
    signin,
)

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse("/console/notices", status_code=303)


for part in (signin, notices, deliveries, patients, locations, inbox, audit):
    router.include_router(part.router)

__all__ = ["router"]
