"""Patients' replies: every text that is not a keyword lands in its location's inbox, linked to
the patient it matches and the notice it most likely answers (the latest delivery to that
number); managers answer through the same channel and from the number the patient wrote to;
while the location has an announced closure, a text gets the closure's words back at once, in
the patient's language, once per patient and notice version.

Opt-out wins: STOP is applied before a text reaches ``receive`` (``Consent.reply``), and no
answer or auto-reply goes to an opted-out number. Bodies are patient data: never logged, shown
only to staff of the location, erased by retention (``Retention``) like deliveries' addresses.
Conversations of a number nothing places in a location are seen by staff of every location.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from notifier.domain.actors import Actor
from notifier.domain.contacts import mask_address, normalize_phone
from notifier.domain.conversations import (
    Author,
    MessageState,
    auto_reply_text,
    checked_answer,
)
from notifier.domain.erasure import ERASED
from notifier.domain.notices import Template
from notifier.domain.untrusted import printable
from notifier.errors import NotFoundError, ValidationError
from notifier.rendering.messages import context, resolve_language
from notifier.storage import accounts as account_rows
from notifier.storage import consent as consent_rows
from notifier.storage import conversations as rows
from notifier.storage import locations as location_rows
from notifier.storage import notices as notice_rows
from notifier.storage import patients as patient_rows
from notifier.storage.models import Conversation, ConversationMessage, Location, Patient
from notifier.usecases import Deps, UseCase, inbound
from notifier.usecases.audit import record
from notifier.usecases.conversation_views import (
    ConversationView,
    InboxLocation,
    MessageView,
    conversation_views,
    message_view,
)
from notifier.usecases.lookups import require_location, require_manager, require_patient_data

log = logging.getLogger(__name__)
SHOWN = 200  # conversations per list


class Replies(UseCase):
    def __init__(self, deps: Deps) -> None:
        super().__init__(deps)
        # Called after an answer or auto-reply is queued: the serving process wakes its
        # ``send_answers`` job with it (otherwise the job's next poll finds it).
        self.on_queued: Callable[[], None] | None = None

    # --- a patient's text -------------------------------------------------------------------

    def receive(self, channel: str, from_: str, to: str, body: str, message_id: str) -> int | None:
        """Store a text that is not a keyword and queue the closure auto-reply if one is due
        (the ``send_answers`` job sends it: the webhook never waits for the provider); the
        conversation's id (None: ignored, or a replay of a text already stored)."""
        now = self.clock.now()
        text = inbound.received(message_id, from_, body, self.settings.default_region)
        if text is None:
            return None
        sender = _our_number(to, self.settings.default_region)
        with self.db.session() as s:
            conversation = self._conversation(s, channel, text.sender, sender, now)
            stored = rows.add_message_once(
                s,
                ConversationMessage(
                    conversation_id=conversation.id,
                    channel=channel,
                    author=Author.PATIENT,
                    body=text.body,
                    state=MessageState.RECEIVED,
                    provider_id=text.provider_id,
                    notice_id=conversation.notice_id,
                    at=now,
                ),
            )
            if stored is None:
                log.info("inbound reply replayed", extra={"action": "reply_replay"})
                return None
            conversation.unread = Conversation.unread + 1  # in SQL: texts at once all count
            conversation.done = False
            conversation.last_message_at = now
            conversation.waiting_since = conversation.waiting_since or now
            auto = self._auto_reply(s, conversation, now)
            conversation_id, auto_id = conversation.id, auto.id if auto else None
        log.info(
            "inbound reply stored",
            extra={
                "action": "reply_received",
                "conversation_id": conversation_id,
                "from": mask_address(text.sender),
                "auto_reply": auto_id is not None,
            },
        )
        if auto_id is not None:
            self._queued()
        return conversation_id

    def _conversation(
        self, s: Session, channel: str, address: str, sender: str | None, now: datetime
    ) -> Conversation:
        """The number's conversation in the location its latest delivery (else its patient)
        places it, with the patient and the notice it most likely answers."""
        spec = self.deps.spec(channel)
        phones = [n for n, c in self.deps.channels.items() if c.address is spec.address]
        delivery = rows.latest_delivery_to(s, phones, address)
        patient: Patient | None = None
        notice_id = None
        if delivery is not None:
            patient, notice_id = delivery.patient, rows.notice_id_of(s, delivery)
        else:
            holders = patient_rows.patients_with_address(s, spec, address)
            patient = holders[0] if holders else None
        location_id = patient.location_id if patient is not None else None
        conversation = rows.find(s, location_id, channel, address) or rows.add_or_find(
            s, location_id, channel, address, now
        )
        if patient is not None:
            conversation.patient_id = patient.id
        conversation.notice_id = notice_id or conversation.notice_id
        conversation.sender = sender or conversation.sender
        return conversation

    def _auto_reply(
        self, s: Session, conversation: Conversation, now: datetime
    ) -> ConversationMessage | None:
        """The closure auto-reply, stored as ``queued`` (once per conversation and notice
        version: the unique key decides), if the location has one to give."""
        if not self.settings.auto_reply or conversation.location_id is None:
            return None
        location = s.get(Location, conversation.location_id)
        if location is None or not location.auto_reply:
            return None
        if consent_rows.opt_out_exists(s, conversation.channel, conversation.address):
            return None
        closures = rows.closures(s, location.id, now)
        if not closures:
            return None
        notice = closures[0]
        facts = notice_rows.facts(notice)
        patient = s.get(Patient, conversation.patient_id) if conversation.patient_id else None
        messages = self.deps.messages
        language = resolve_language(
            patient.language if patient else None,
            facts.clinic.default_language,
            messages.languages(),
        )
        ctx = context(facts, language)
        words = messages.renderer.render_public(ctx, Template.CLOSURE)
        return rows.add_message_once(
            s,
            ConversationMessage(
                conversation_id=conversation.id,
                channel=conversation.channel,
                author=Author.AUTO,
                body=auto_reply_text(ctx.language, words),
                state=MessageState.QUEUED,
                next_attempt_at=now,
                updated_at=now,
                notice_id=notice.id,
                auto_notice_id=notice.id,
                sent_by=Author.AUTO.value,
                at=now,
            ),
        )

    # --- the inbox --------------------------------------------------------------------------

    def conversations(
        self, actor: Actor, location: str | None = None, limit: int = SHOWN
    ) -> list[ConversationView]:
        """The actor's locations' conversations (or ``location``'s), newest first: patients'
        words and numbers, for those who see patients (not viewers, nor tokens without
        ``--sees-patients``)."""
        with self.db.session() as s:
            only = require_location(s, location, actor).id if location else None
            require_patient_data(actor)
            found = rows.page(s, _within(actor), only, limit)
            views = conversation_views(s, self.clock.now(), found)
            # patients' words: a bulk read, in the audit trail (ids and counts only)
            record(s, actor, "replies_list", self.clock.now(), location, len(views))
            return views

    def unread(self, actor: Actor) -> int:
        """How many of the actor's conversations have unread texts (the console's nav shows it
        on every page)."""
        with self.db.session() as s:
            return rows.unread_count(s, _within(actor))

    def conversation(
        self, actor: Actor, conversation_id: int, read: bool = False
    ) -> ConversationView:
        """One conversation; ``read``: its texts are now read (the console opening it)."""
        with self.db.session() as s:
            found = _require(s, actor, conversation_id)
            require_patient_data(actor)
            if read:
                found.unread = 0
            return conversation_views(s, self.clock.now(), [found])[0]

    def locations(self, actor: Actor) -> list[InboxLocation]:
        """The actor's locations with their auto-reply switch."""
        with self.db.session() as s:
            return [
                InboxLocation(loc.slug, loc.name, loc.auto_reply and self.settings.auto_reply)
                for loc in location_rows.locations(s)
                if actor.sees(loc.id)
            ]

    def waiting(self, actor: Actor | None = None) -> list[ConversationView]:
        """Open conversations whose patient has waited longer than
        ``NOTIFIER_REPLY_WAITING_MINUTES`` of the location's business hours (None: every
        location, for /metrics). Nothing for an actor who does not see patients: the list
        names them."""
        if actor is not None and not actor.sees_patients:
            return []
        now, limit = self.clock.now(), self.settings.reply_waiting_minutes
        with self.db.session() as s:
            candidates = [
                c
                for c in rows.waiting(s, now - timedelta(minutes=limit))
                if actor is None or _sees(actor, c)
            ]
            views = conversation_views(s, self.clock.now(), candidates)
        return [v for v in views if v.waiting_minutes is not None and v.waiting_minutes >= limit]

    def waiting_counts(self) -> dict[str, int]:
        """Conversations waiting too long, per location slug ("" for unplaced numbers)."""
        counts: dict[str, int] = {}
        for view in self.waiting():
            counts[view.location or ""] = counts.get(view.location or "", 0) + 1
        return counts

    # --- what managers do -------------------------------------------------------------------

    def answer(self, actor: Actor, conversation_id: int, message: str) -> MessageView:
        """Queue ``message`` for the patient: the ``send_answers`` job sends it through the
        conversation's channel, from the number they wrote to, and keeps its state (queued,
        sent, delivered, or failed with the reason) as the delivery log shows it.
        ValidationError when the patient opted out: nobody who opted out is answered."""
        require_manager(actor)
        text, now = checked_answer(message), self.clock.now()
        with self.db.session() as s:
            found = _require(s, actor, conversation_id)
            if found.address.startswith(ERASED):
                raise ValidationError("this conversation's number was erased", "conversation")
            if consent_rows.opt_out_exists(s, found.channel, found.address):
                raise ValidationError(
                    "the patient opted out (STOP): nobody who opted out is answered", "message"
                )
            row = rows.add_message(
                s,
                ConversationMessage(
                    conversation_id=found.id,
                    channel=found.channel,
                    author=Author.STAFF,
                    body=text,
                    state=MessageState.QUEUED,
                    notice_id=found.notice_id,
                    sent_by=actor.label,
                    at=now,
                    next_attempt_at=now,
                    updated_at=now,
                ),
            )
            found.unread, found.waiting_since, found.last_message_at = 0, None, now
            record(s, actor, "reply_answer", now, f"conversation:{found.id}")
            view = message_view(row)
        self._queued()
        return view

    def mark_done(self, actor: Actor, conversation_id: int, done: bool = True) -> ConversationView:
        require_manager(actor)
        now = self.clock.now()
        with self.db.session() as s:
            found = _require(s, actor, conversation_id)
            found.done = done
            if done:
                found.unread, found.waiting_since = 0, None
            record(
                s, actor, "reply_done" if done else "reply_reopen", now, f"conversation:{found.id}"
            )
            return conversation_views(s, self.clock.now(), [found])[0]

    def assign(self, actor: Actor, conversation_id: int, email: str | None) -> ConversationView:
        """Give the conversation to a user of its location (None or "": to nobody)."""
        require_manager(actor)
        now = self.clock.now()
        with self.db.session() as s:
            found = _require(s, actor, conversation_id)
            user_id = None
            if email:
                user = account_rows.user_by_email(s, email)
                scope = account_rows.user_location_ids(s, user) if user else None
                if (
                    user is None
                    or user.disabled_at is not None
                    or (
                        found.location_id is not None
                        and scope is not None
                        and found.location_id not in scope
                    )
                ):
                    raise NotFoundError(
                        f"no user {email!r} of this conversation's location", "user"
                    )
                user_id = user.id
            found.assigned_to = user_id
            record(s, actor, "reply_assign", now, f"conversation:{found.id}", user_id)
            return conversation_views(s, self.clock.now(), [found])[0]

    def set_auto_reply(self, actor: Actor, slug: str, on: bool) -> InboxLocation:
        """Switch the closure auto-reply of location ``slug`` on or off."""
        require_manager(actor)
        now = self.clock.now()
        with self.db.session() as s:
            location = require_location(s, slug, actor)
            location.auto_reply = on
            record(s, actor, "auto_reply_on" if on else "auto_reply_off", now, f"location:{slug}")
            return InboxLocation(location.slug, location.name, on and self.settings.auto_reply)

    def _queued(self) -> None:
        """Wake the worker that sends answers (if this process runs one)."""
        if self.on_queued is not None:
            self.on_queued()


def _our_number(to: str, region: str) -> str | None:
    """The number the patient wrote to, in E.164; None (answers then go from the channel's
    own sender) when the webhook did not give a phone number."""
    try:
        return normalize_phone(printable(to), region)
    except ValidationError:
        return None


def _within(actor: Actor) -> list[int] | None:
    """The actor's location ids, as the conversation queries take them (None: every one)."""
    return sorted(actor.locations) if actor.locations is not None else None


def _sees(actor: Actor, conversation: Conversation) -> bool:
    if conversation.location_id is None:
        return actor.every_location
    return actor.sees(conversation.location_id)


def _require(s: Session, actor: Actor, conversation_id: int) -> Conversation:
    found = rows.get(s, conversation_id)
    if found is None or not _sees(actor, found):
        raise NotFoundError(f"no conversation with id {conversation_id}", "conversation")
    return found
