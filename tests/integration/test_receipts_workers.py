"""Several appliers on one database: each stored report is applied by exactly one of them (a
batch is claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite takes one writer at a
time), and a batch whose applier died before committing is applied by the others."""

from __future__ import annotations

import io
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from notifier.bootstrap import App, build_app
from notifier.clock import FrozenClock
from notifier.domain.deliveries import Report
from notifier.storage import receipts as receipt_rows
from notifier.storage.models import DeliveryEvent, Receipt
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel
from tests.support.patients import patients_csv
from tests.support.peers import peer_settings
from tests.support.web import broadcast_sms, save_cova

TEXTS = 120
APPLIERS = 3


class Died(Exception):
    """The applier's process went away before its commit."""


def test_three_appliers_apply_each_report_once_and_take_over_a_dead_ones_batch(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> None:
    settings = peer_settings(database_url, fake_twilio, fake_smtp)
    apps = [build_app(settings, clock=clock) for _ in range(APPLIERS + 1)]
    first = apps[0]
    try:
        save_cova(first)
        csv = patients_csv(TEXTS, with_email=False)
        first.patients.import_patients(OPERATOR, io.StringIO(csv))
        broadcast_sms(first, FakeChannel())
        sids = [d.provider_id or "" for d in first.deliveries.log(OPERATOR, state="sent")]
        assert len(sids) >= TEXTS
        # Each text: its "sent" (our state already), "delivered", and "delivered" once more.
        burst = [Report("sms", sid, status) for sid in sids for status in ("sent", "delivered")]
        burst += [Report("sms", sid, "delivered") for sid in sids[::2]]
        random.Random(3).shuffle(burst)
        assert first.deliveries.take_in(burst) == len(burst)

        dead = apps[-1]
        with pytest.raises(Died), dead.db.session() as s:
            assert len(receipt_rows.claim(s, clock.now(), 40)) == 40
            raise Died  # its transaction, and the claim with it, is gone

        def applier(app: App) -> Counter[str]:
            done: Counter[str] = Counter()
            while counts := app.deliveries.apply_received(limit=25):
                done.update(counts)
            return done

        with ThreadPoolExecutor(APPLIERS) as pool:
            results = list(pool.map(applier, apps[:APPLIERS]))
        total = sum(results, Counter())
        assert total["applied"] == len(sids)  # no report counted by two appliers
        assert first.deliveries.receipts_waiting() == 0

        with first.db.session() as s:
            outcomes = dict(
                s.execute(select(Receipt.outcome, func.count()).group_by(Receipt.outcome)).all()
            )
            delivered = Counter(
                s.scalars(
                    select(DeliveryEvent.delivery_id).where(
                        DeliveryEvent.kind == "status_delivered"
                    )
                ).all()
            )
        stored = 2 * len(sids)  # the repeated "delivered" was stored once
        assert sum(outcomes.values()) == stored and outcomes["applied"] == len(sids)
        assert len(delivered) == len(sids) and set(delivered.values()) == {1}
        assert {d.state for d in first.deliveries.log(OPERATOR)} == {"delivered"}
    finally:
        for app in apps:
            app.close()
