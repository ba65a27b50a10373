"""Patients answering a closure at once: ``count`` texts from distinct patients through
``Replies.receive`` (the inbound webhook's work after the signature check), on SQLite, against
10,000 patients with the notice fanned out to them. First without the auto-reply (storing and
linking only), then with it (queued in the same transaction); then the worker's
``AnswerSender.drain`` sends the queued auto-replies through the real SDK to the
Twilio-compatible server in its own process. ``python -m bench.replies [count]``."""

from __future__ import annotations

import sys
import time

from bench.common import OPERATOR, add_patients, bench_app, queue_notice, twilio_server

PATIENTS = 10_000


def run(count: int, auto_reply: bool) -> str:
    with twilio_server(None) as twilio, bench_app(twilio) as app:
        add_patients(app, PATIENTS)
        queue_notice(app)
        app.fanout.fire_due()  # deliveries to every patient: each text finds its notice
        app.replies.set_auto_reply(OPERATOR, "cova", auto_reply)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(count):
            app.replies.receive(
                "sms", f"+1540{2000000 + i}", "+15005550006", "Open Friday?", f"SM{i:032x}"
            )
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        sending = ""
        if auto_reply:
            answers = app.answers()
            started, cpu_started = time.perf_counter(), time.process_time()
            sent = answers.drain()
            s_wall, s_cpu = time.perf_counter() - started, time.process_time() - cpu_started
            answers.close()
            sending = (
                f"; the worker sent {sent} auto-replies in {s_wall:.2f} s = "
                f"{sent / s_wall:.0f}/s, CPU {s_cpu / max(sent, 1) * 1000:.2f} ms each"
            )
        conversations = app.replies.conversations(OPERATOR, limit=count + 1)
        answered = sum(1 for c in conversations if len(c.messages) == 2)
        linked = sum(1 for c in conversations if c.notice_id is not None)
    return (
        f"auto-reply {'on ' if auto_reply else 'off'}: {count} texts in {wall:.2f} s = "
        f"{count / wall:.0f} texts/s, CPU {cpu / count * 1000:.2f} ms per text; "
        f"{len(conversations)} conversations, {linked} linked to the notice, "
        f"{answered} auto-replied{sending}"
    )


def main(count: int = 1000) -> None:
    print(run(count, auto_reply=False))
    print(run(count, auto_reply=True))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
