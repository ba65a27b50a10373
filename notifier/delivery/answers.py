"""Sends the answers staff write and the closure auto-replies, off the request path.

``Replies`` stores them ``queued``; the ``send_answers`` job claims them (a conditional UPDATE
with a lease, as the dispatcher claims deliveries), sends each through its conversation's
channel from the number the patient wrote to, and records the outcome on the row: ``sent``
with the provider's id, ``queued`` again with a backoff for a transient error (the dispatcher's
``RetryPolicy``), ``failed`` with the reason for a permanent one or once it is no use any more.

Crash safety: a claim whose lease ran out (its worker died between claim and record) is queued
again with ``needs_reconcile``, and the provider is asked (``Channel.find_sent``) before any
resend, so a crash never loses an answer nor sends it twice. Opt-out wins: an answer to a
number that opted out while it waited is not sent (``refused``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.channels.base import Channel, ChannelError, OutgoingMessage
from notifier.delivery import faults
from notifier.domain.contacts import mask_address
from notifier.domain.conversations import MessageState
from notifier.domain.deliveries import (
    DeliveryState,
    Failure,
    Outcome,
    RetryPolicy,
    failed,
    sent,
)
from notifier.domain.erasure import ERASED
from notifier.storage import consent as consent_rows
from notifier.storage import conversations as rows
from notifier.usecases import Deps

log = logging.getLogger(__name__)

BATCH = 20
USEFUL_FOR = timedelta(hours=24)  # an answer still retried a day later is no answer: failed
RECONCILE_WINDOW = timedelta(minutes=5)  # how far before the answer the provider is searched


@dataclass(frozen=True)
class _Claimed:
    message_id: int
    channel: str
    outgoing: OutgoingMessage
    attempts: int
    needs_reconcile: bool
    at: datetime
    refused: str | None  # why it must not go (opted out, erased); None: send it


class AnswerSender:
    def __init__(
        self,
        deps: Deps,
        channels: Mapping[str, Channel],
        worker_id: str,
        rng: random.Random | None = None,
        own_channels: bool = False,
    ) -> None:
        self.db, self.clock, self.settings = deps.db, deps.clock, deps.settings
        self.channels = channels
        self.worker_id = worker_id
        self.rng = rng or random.Random()
        self._own = own_channels  # built for it alone: ``close`` closes them

    def close(self) -> None:
        if self._own:
            for channel in self.channels.values():
                channel.close()

    def drain(self) -> int:
        """Hand back what dead workers held, then send every answer due now; how many were
        handled (sent, retried later, failed or refused)."""
        with self.db.session() as s:
            released = rows.release_stalled_answers(s, self.clock.now())
        if released:
            log.warning(
                "answers held by a stopped worker queued again",
                extra={"action": "reply_claims_taken_over", "count": released},
            )
        handled = 0
        while ids := self.claim(BATCH):
            for message_id in ids:
                self.send(message_id)
            handled += len(ids)
        return handled

    def claim(self, limit: int) -> list[int]:
        now = self.clock.now()
        lease_until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.db.session() as s:
            return rows.claim_answers(
                s, self.worker_id, list(self.channels), now, lease_until, limit
            )

    def send(self, message_id: int) -> None:
        """One claimed answer: its provider call, then its outcome recorded."""
        claimed = self._load(message_id)
        if claimed is None:
            return
        if claimed.refused is not None:
            self._record(claimed, MessageState.REFUSED, detail=claimed.refused)
            return
        try:
            outcome = self._attempt(claimed)
        except Exception as error:  # a bug or a library surprise: kept, asked about, retried
            faults.log_failure(log, "unexpected error while answering", error, action="reply_error")
            outcome = self._failure(
                claimed,
                ChannelError(
                    faults.reason("unexpected error", error), code="internal", ambiguous=True
                ),
            )
        self._keep(claimed, outcome)

    def _load(self, message_id: int) -> _Claimed | None:
        with self.db.session() as s:
            found = rows.answer_to_send(s, message_id)
            if found is None:
                return None
            row, conversation = found
            refused = None
            if conversation.address.startswith(ERASED) or row.body is None:
                refused = "erased before it went out"
            elif consent_rows.opt_out_exists(s, conversation.channel, conversation.address):
                refused = "opted out (STOP) before it went out"
            return _Claimed(
                message_id=row.id,
                channel=row.channel,
                outgoing=OutgoingMessage(
                    delivery_id=0,
                    to=conversation.address,
                    text=row.body or "",
                    sender=conversation.sender,
                ),
                attempts=row.attempts,
                needs_reconcile=row.needs_reconcile,
                at=row.at,
                refused=refused,
            )

    def _attempt(self, claimed: _Claimed) -> Outcome:
        channel = self.channels.get(claimed.channel)
        if channel is None:
            error = ChannelError(
                f"the {claimed.channel} channel is not configured",
                code="not_configured",
                permanent=True,
            )
            return self._failure(claimed, error)
        try:
            if claimed.needs_reconcile:
                since = claimed.at - RECONCILE_WINDOW
                found = channel.find_sent(claimed.outgoing, since)
                if found is not None:
                    return sent(claimed.attempts, found.provider_id, 1, "reconciled")
            result = channel.send(claimed.outgoing)
        except ChannelError as error:
            return self._failure(claimed, error)
        return sent(claimed.attempts + 1, result.provider_id, result.segments or 1)

    def _failure(self, claimed: _Claimed, error: ChannelError) -> Outcome:
        policy = RetryPolicy(
            self.settings.retry_base_seconds,
            self.settings.retry_max_seconds,
            self.settings.max_attempts,
        )
        failure = Failure(
            error.message, error.code, error.permanent, error.ambiguous, error.retry_after
        )
        return failed(
            failure,
            claimed.attempts + 1,
            policy,
            self.clock.now(),
            self.rng.random(),
            claimed.at + USEFUL_FOR,
        )

    def _keep(self, claimed: _Claimed, outcome: Outcome) -> None:
        if outcome.state == DeliveryState.SENT:
            self._record(
                claimed,
                MessageState.SENT,
                attempts=outcome.attempts,
                provider_id=outcome.provider_id,
                sent_at=self.clock.now(),
            )
        elif outcome.state == DeliveryState.PENDING:
            self._record(
                claimed,
                MessageState.QUEUED,
                attempts=outcome.attempts,
                code=outcome.code,
                detail=outcome.detail,
                next_attempt_at=outcome.next_attempt_at,
                needs_reconcile=outcome.needs_reconcile,
            )
        else:  # failed, or expired (no use any more): failed with the reason
            self._record(
                claimed,
                MessageState.FAILED,
                attempts=outcome.attempts,
                code=outcome.code,
                detail=outcome.detail,
            )

    def _record(
        self,
        claimed: _Claimed,
        state: MessageState,
        *,
        attempts: int | None = None,
        provider_id: str | None = None,
        code: str | None = None,
        detail: str | None = None,
        next_attempt_at: datetime | None = None,
        needs_reconcile: bool = False,
        sent_at: datetime | None = None,
    ) -> None:
        now = self.clock.now()
        with self.db.session() as s:
            kept = rows.record_answer(
                s,
                claimed.message_id,
                self.worker_id,
                now,
                state=state,
                attempts=claimed.attempts if attempts is None else attempts,
                provider_id=provider_id,
                error_code=code,
                error_message=detail,
                next_attempt_at=next_attempt_at,
                needs_reconcile=needs_reconcile,
                sent_at=sent_at,
            )
        level = logging.WARNING if state is MessageState.FAILED else logging.INFO
        log.log(
            level,
            "answer %s",
            state.value,
            extra={
                "action": f"reply_{state.value}",
                "message_id": claimed.message_id,
                "to": mask_address(claimed.outgoing.to),
                "attempt": attempts,
                "code": code,
                "stale": not kept,
            },
        )
