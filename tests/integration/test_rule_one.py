"""Rule 1, checked over generated interleavings: after any sequence of creates, updates and
cancellations — with quiet-hours holds, dispatcher claims, the provider accepting or refusing,
and crashes mid-send — each patient ends with exactly one message telling the latest state: the
correction if an earlier version reached them, else the latest version plainly (or nothing,
when the closure was called off before they heard of it). Nobody gets two messages of one
version. SQLite and PostgreSQL; the real fan-out, dispatcher, heartbeat takeover and storage.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update

from notifier.bootstrap import App, build_app
from notifier.channels.base import ChannelError, OutgoingMessage, SendResult
from notifier.clock import FrozenClock
from notifier.delivery.dispatcher import Dispatcher
from notifier.delivery.outcomes import WorkItem
from notifier.domain.contacts import mask_address
from notifier.storage.models import (
    Broadcast,
    Delivery,
    DeliveryEvent,
    Notice,
    OptOut,
    Worker,
)
from notifier.usecases.notice_requests import NoticeRequest
from notifier_sandbox.smtp_server import FakeSmtp
from notifier_sandbox.twilio_server import FakeTwilio
from tests.support.actors import OPERATOR
from tests.support.channels import FakeChannel, accept
from tests.support.patients import HEADER, phone
from tests.support.peers import NEW_YORK, peer_settings

PHONES = [phone(500 + i) for i in range(3)]
PATIENTS = "\n".join(
    [HEADER] + [f"r{i},Pat{i},Test,{p},,en,cova,yes,no" for i, p in enumerate(PHONES)]
)
# The closure is Thursday: not urgent, so texts wait out quiet hours (from 21:00) once "advance"d.
START = datetime(2025, 2, 18, 20, 30, tzinfo=NEW_YORK)
MORNING = datetime(2025, 2, 20, 9, 0, tzinfo=NEW_YORK)  # past quiet hours, before it ends

Step = tuple[str, int]
# Weighted so that most stories get messages moving before they change the notice.
OPS = (
    ["fire"] * 2
    + ["drain"] * 2
    + ["claim"] * 3
    + ["accept"] * 3
    + ["refuse", "transient", "crash", "advance", "takeover"]
    + ["cancel"] * 2
    + ["accept_then_crash"] * 2
    + ["update"] * 2
    + ["update_while_sending"] * 2
)
STEPS = st.lists(
    st.tuples(st.sampled_from(OPS), st.integers(min_value=0, max_value=5)), min_size=6, max_size=24
)
SENT_FIRST: list[Step] = [("fire", 0), ("drain", 0)]
V3_BEFORE_V2: list[Step] = [("accept", 1), ("accept_then_crash", 0)]
TAKEN_OVER: list[Step] = [("fire", 0), ("claim", 0), ("accept_then_crash", 0), ("takeover", 0)]
# Half the stories start after the first version went out to everyone: corrections then follow.
STORIES = st.tuples(st.booleans(), STEPS).map(lambda s: (SENT_FIRST if s[0] else []) + s[1])


@dataclass
class Provider:
    """The provider: each send is accepted, refused or fails for a while, as the step says."""

    answer: str = "accept"
    channel: FakeChannel = field(init=False)

    def __post_init__(self) -> None:
        self.channel = FakeChannel(self.script)

    def script(self, message: OutgoingMessage, call: int) -> SendResult | ChannelError:
        if self.answer == "refuse":
            return ChannelError("not a mobile number", code="21614", permanent=True)
        if self.answer == "transient":
            return ChannelError("Twilio HTTP 503", code="503", ambiguous=False)
        return accept(message, call)


class Story:
    """One interleaving, played against the real service with a hand-moved clock."""

    def __init__(self, app: App, clock: FrozenClock) -> None:
        self.app = app
        self.clock = clock
        self.provider = Provider()
        self.workers = 0
        self.dispatcher = self._new_dispatcher()
        self.in_flight: list[WorkItem] = []
        self.versions: list[int] = []
        self.cancelled = False

    def _new_dispatcher(self) -> Dispatcher:
        self.workers += 1
        worker = f"host:{self.workers}:story"
        self.app.workers(worker, "worker").beat()
        return self.app.dispatcher({"sms": self.provider.channel}, worker)

    def start(self) -> None:
        self.versions.append(
            self.app.notices.create(
                OPERATOR,
                NoticeRequest(
                    location="cova",
                    starts="2025-02-20 08:00",
                    ends="2025-02-21 00:00",
                    reason="v1",
                    channels=("sms",),
                ),
            ).id
        )

    def play(self, step: Step) -> None:
        op, n = step
        if op == "fire":
            self.app.fanout.fire_due()
        elif op == "drain":  # everything due goes out
            self.dispatcher.drain()
        elif op == "claim":
            self.in_flight.extend(self.dispatcher.claim(n + 1))
        elif op in ("accept", "refuse", "transient") and self.in_flight:
            self.provider.answer = op
            self.dispatcher.deliver(self.in_flight.pop(n % len(self.in_flight)))
            self.provider.answer = "accept"
        elif op == "accept_then_crash" and self.in_flight:
            item = self.in_flight.pop(n % len(self.in_flight))
            self.provider.channel.send(item.message)  # taken, but the process dies
            self.crash()
        elif op == "crash":
            self.crash()
        elif op == "takeover":  # a dead worker's claims go back, to be checked with the provider
            self.clock.advance(self.app.settings.lease_seconds + 1)
            self.app.workers(self.dispatcher.worker_id, "worker").tick()
        elif op == "update_while_sending":  # the race: copies in hand when the update lands
            for sub in [("fire", 0), ("claim", n), ("update", 0), ("fire", 0), ("claim", n)]:
                self.play(sub)
        elif op == "update" and not self.cancelled:
            version = len(self.versions) + 1
            ends = f"2025-02-20 {10 + version:02d}:00"
            self.versions.append(
                self.app.notices.update(
                    OPERATOR, self.versions[-1], ends=ends, reason=f"v{version}"
                ).id
            )
        elif op == "cancel" and not self.cancelled and n < 2:  # rarer: it ends the story
            self.cancelled = True
            cancelled = self.app.notices.cancel(OPERATOR, self.versions[-1], notify=True).id
            if cancelled != self.versions[-1]:  # not cancelled in place: nobody had heard
                self.versions.append(cancelled)
        elif op == "advance" and self.clock.now() + timedelta(hours=n + 1) < MORNING:
            self.clock.advance((n + 1) * 3600)

    def crash(self) -> None:
        """The process dies: what it held stays claimed until another takes it over."""
        self.in_flight.clear()
        self.dispatcher = self._new_dispatcher()

    def finish(self) -> None:
        """The provider takes everything from now on; the service runs until nothing is left."""
        for item in self.in_flight:
            self.dispatcher.deliver(item)
        self.in_flight.clear()
        self.clock.set(MORNING)
        survivor = self.app.workers(self.dispatcher.worker_id, "worker")
        for _ in range(10):
            self.clock.advance(self.app.settings.lease_seconds + 1)  # run-out leases, retries
            survivor.tick()
            self.app.fanout.fire_due()
            self.dispatcher.drain()
            if self.app.health.idle():
                return
        raise AssertionError("the service never became idle")


def check_rule_one(story: Story) -> None:
    app = story.app
    latest = app.notices.get(OPERATOR, story.versions[-1])
    reason = {v: f"Due to v{i + 1}," for i, v in enumerate(story.versions)}
    received: dict[str, list[str]] = defaultdict(list)
    for message in story.provider.channel.accepted_messages():
        received[message.to].append(message.text)
    latest_state = {d.address: d.state for d in app.deliveries.log(OPERATOR, latest.id)}
    called_off = latest.status == "cancelled" or latest.change == "cancellation"
    texts_sent = [t for texts in received.values() for t in texts]
    # What the generated stories cover (--hypothesis-show-statistics).
    event(f"versions: {len(story.versions)}")
    event(f"corrections sent: {sum(t.startswith('UPDATE:') for t in texts_sent) > 0}")
    event(f"called off: {called_off}")
    event(f"told the closure is off: {any(t.startswith('Good news') for t in texts_sent)}")
    event(f"checked with the provider: {bool(story.provider.channel.reconcile_checks)}")
    with app.db.session() as s:
        kinds = set(s.scalars(select(DeliveryEvent.kind).distinct()))
    event(f"held for quiet hours: {'deferred_quiet_hours' in kinds}")
    event(f"waited for an earlier version: {'waiting_for_earlier_version' in kinds}")
    for address in PHONES:
        texts = received[address]
        for version in story.versions[:-1] if latest.change == "cancellation" else story.versions:
            said = [t for t in texts if reason[version] in t]
            assert len(said) <= 1, (address, texts)  # nobody gets two messages of one version
        if latest_state.get(mask_address(address)) == "failed":
            continue  # the provider refused the latest version: the log says why
        if called_off:
            news = [t for t in texts if t.startswith("Good news")]
            if texts and texts[0].startswith("Due to"):  # told of the closure
                assert len(news) == 1 and texts[-1] == news[0], (address, texts)
            else:
                assert texts == [], (address, texts)
            continue
        assert texts, (address, latest_state)
        last = texts[-1]
        assert reason[latest.id] in last, (address, texts)
        told_earlier = any(reason[v] in t for v in story.versions[:-1] for t in texts)
        assert last.startswith("UPDATE:") is told_earlier, (address, texts)


def clean(app: App) -> None:
    """Each generated story starts from the same location and patients, nothing else."""
    with app.db.session() as s:
        s.execute(update(Notice).values(supersedes_id=None, root_id=None))
        s.execute(update(Broadcast).values(repeats_id=None))
        for table in (DeliveryEvent, Delivery, Broadcast, Notice, OptOut, Worker):
            s.execute(delete(table))


@pytest.fixture
def story_app(
    database_url: str, fake_twilio: FakeTwilio, fake_smtp: FakeSmtp, clock: FrozenClock
) -> Iterator[App]:
    built = build_app(
        peer_settings(database_url, fake_twilio, fake_smtp, last_look_seconds=0), clock=clock
    )
    built.locations.save(OPERATOR, "cova", "COVA", "America/New_York", "Mon-Fri 08:00-17:00")
    built.patients.import_patients(OPERATOR, io.StringIO(PATIENTS))
    yield built
    built.close()


@settings(
    max_examples=int(os.environ.get("RULE_ONE_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STORIES)
# Found by review: a copy taken over from a dead worker may be at the provider; an update or a
# cancellation must not withdraw it as if it never went out.
@example(steps=[*TAKEN_OVER, ("update", 0)])
@example(steps=[*TAKEN_OVER, ("cancel", 0)])
# Found by the longer run: told v1, v2 in flight, v3 must wait for it, or v2 arrives last.
@example(steps=[*SENT_FIRST, ("update", 0), ("update_while_sending", 0), *V3_BEFORE_V2])
def test_every_patient_ends_with_the_latest_truth(
    story_app: App, clock: FrozenClock, steps: list[Step]
) -> None:
    note(f"steps: {steps}")
    clean(story_app)
    clock.set(START)
    story = Story(story_app, clock)
    story.start()
    for step in steps:
        story.play(step)
    story.finish()
    check_rule_one(story)
