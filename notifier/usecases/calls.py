"""Calls in progress: what a call says when Twilio fetches its TwiML, and a patient pressing 9
to get no more calls (a voice opt-out in the consent ledger)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from notifier.calls import links
from notifier.domain.calls import Voice, parse_voices
from notifier.domain.consent import Source
from notifier.domain.contacts import mask_address
from notifier.storage import calls as call_rows
from notifier.usecases import UseCase
from notifier.usecases.consent import opt_out

log = logging.getLogger(__name__)
VOICE = "voice"


@dataclass(frozen=True)
class Script:
    """What one call says, and in which voice."""

    delivery_id: int
    text: str
    language: str  # the message's language: "en"
    voice: Voice


class Calls(UseCase):
    def delivery_of(self, token: str) -> int | None:
        """The delivery a genuine, unexpired TwiML link names; None for anything else."""
        signer = links(self.settings)
        return signer.read(token, self.clock.now()) if signer is not None else None

    def script(self, delivery_id: int) -> Script | None:
        """The words kept for the call when it was placed; None if there are none."""
        with self.db.session() as s:
            found = call_rows.spoken(s, delivery_id)
            if found is None:
                return None
            spoken, _ = found
            voices = parse_voices(self.settings.voice_voices)
            voice = voices.get(spoken.language) or next(iter(voices.values()))
            return Script(delivery_id, spoken.text, spoken.language, voice)

    def stop_calls(self, delivery_id: int, call_sid: str) -> bool:
        """The patient pressed 9: their number gets no more calls (False if it already had
        opted out, or the delivery is unknown)."""
        spec = self.deps.spec(VOICE)
        with self.db.session() as s:
            found = call_rows.spoken(s, delivery_id)
            if found is None:
                return False
            _, delivery = found
            address = delivery.address
            changed = opt_out(
                s,
                spec,
                address,
                Source.KEYPRESS,
                self.clock.now(),
                patient_id=delivery.patient_id,
                detail=f"pressed 9 during call {call_sid[:40]}",
            )
        log.info(
            "voice opt-out by keypress",
            extra={
                "action": "voice_opt_out",
                "delivery_id": delivery_id,
                "to": mask_address(address),
                "changed": changed,
            },
        )
        return changed
