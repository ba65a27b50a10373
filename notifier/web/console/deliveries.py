"""The delivery log's filters and CSV export, and one delivery's history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from notifier.bootstrap import App
from notifier.domain.actors import Actor
from notifier.errors import NotFoundError
from notifier.spreadsheets import csv_text
from notifier.usecases.views import DELIVERY_CSV_COLUMNS, NOT_REACHED_COLUMNS, DeliveryView
from notifier.web.console.auth import CurrentSignIn, SignedIn, actor_of
from notifier.web.console.pages import not_found, page
from notifier.web.deps import Application

router = APIRouter()


@dataclass(frozen=True)
class LogFilter:
    """The delivery log's filters, from the query string (a FastAPI dependency)."""

    state: str = ""
    channel: str = ""
    error_code: str = ""
    q: str = ""

    def apply(self, rows: Sequence[DeliveryView]) -> list[DeliveryView]:
        needle = self.q.strip().lower()
        return [
            r
            for r in rows
            if (not self.error_code or (r.error_code or "") == self.error_code.strip())
            and (not needle or needle in r.address.lower() or needle == str(r.id))
        ]

    def query(self) -> str:
        return urlencode({k: v for k, v in vars(self).items() if v})


def delivery_log(
    app: App,
    actor: Actor,
    notice_id: int,
    filters: LogFilter,
    show_patients: bool = False,
    export: bool = False,
) -> list[DeliveryView]:
    rows = app.deliveries.log(
        actor,
        notice_id,
        filters.state or None,
        filters.channel or None,
        show_patients=show_patients,
        export=export,
    )
    return filters.apply(rows)


def deliveries_csv(rows: Sequence[DeliveryView]) -> str:
    """The delivery log as CSV, the same columns as ``notifier deliveries --format csv``."""
    return csv_text([vars(row) for row in rows], DELIVERY_CSV_COLUMNS)


Filters = Annotated[LogFilter, Depends()]


@router.get("/notices/{notice_id}/deliveries.csv")
def export(
    request: Request,
    app: Application,
    sign_in: CurrentSignIn,
    user: SignedIn,
    notice_id: int,
    filters: Filters,
) -> Response:
    try:
        rows = delivery_log(app, actor_of(request, sign_in), notice_id, filters, export=True)
    except NotFoundError:
        return Response(status_code=404)
    return Response(
        deliveries_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="notice-{notice_id}-deliveries.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/notices/{notice_id}/not-reached")
def not_reached_page(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn, notice_id: int
) -> Response:
    """Patients this notice did not reach, with phone and email, for the front desk to call
    (403 for a viewer: ``Deliveries.not_reached`` refuses)."""
    try:
        actor = actor_of(request, sign_in)
        notice = app.notices.get(actor, notice_id)
        rows = app.deliveries.not_reached(actor, notice_id)
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no notice {notice_id}.")
    return page(request, app, sign_in, "not_reached.html", notice=notice, rows=rows)


@router.get("/notices/{notice_id}/not-reached.csv")
def not_reached_csv(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn, notice_id: int
) -> Response:
    try:
        rows = app.deliveries.not_reached(actor_of(request, sign_in), notice_id)
    except NotFoundError:
        return Response(status_code=404)
    return Response(
        csv_text([vars(row) for row in rows], NOT_REACHED_COLUMNS),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="notice-{notice_id}-not-reached.csv"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/deliveries/{delivery_id}")
def delivery_page(
    request: Request, app: Application, sign_in: CurrentSignIn, user: SignedIn, delivery_id: int
) -> Response:
    try:
        actor = actor_of(request, sign_in)
        delivery, events = app.deliveries.history(actor, delivery_id)
    except NotFoundError:
        return not_found(request, app, sign_in, f"There is no delivery {delivery_id}.")
    assert delivery.notice_id is not None  # a delivery's history: always a notice's message
    tz = app.notices.get(actor, delivery.notice_id).timezone
    return page(request, app, sign_in, "delivery.html", delivery=delivery, events=events, tz=tz)
