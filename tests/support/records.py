"""Reading what the database recorded (events, opt-outs, the consent ledger), for assertions."""

from __future__ import annotations

from notifier.bootstrap import App
from notifier.storage import consent as consent_rows
from notifier.storage import reports


def events(app: App, delivery_id: int) -> list[tuple[str, str, str | None]]:
    with app.db.session() as s:
        return [(e.kind, e.state, e.code) for e in reports.events_for(s, [delivery_id])]


def event_kinds(app: App, delivery_id: int) -> list[str]:
    return [kind for kind, _, _ in events(app, delivery_id)]


def opted_out(app: App, channel: str, address: str) -> bool:
    with app.db.session() as s:
        return consent_rows.opt_out_exists(s, channel, address)


def ledger(app: App, channel: str, address: str) -> list[tuple[str, str, str, int | None]]:
    """Opt-out/opt-in entries (the consent granted by the patient import is tested on its own)."""
    with app.db.session() as s:
        return [
            (e.source, e.old, e.new, e.patient_id)
            for e in consent_rows.consent_events(s, channel, address)
            if e.source != "import"
        ]
