"""Where our CPU per SMS goes: the dispatcher without a rate limit, with each stage's CPU timed
on the thread that runs it, and the floors beneath it measured alone in the same run.

    python -m bench.dispatch_cpu [--messages 3000] [--rounds 2] [--threads 128] [--no-floors]

Stages (CPU of this process per SMS sent; the Twilio-compatible server runs in its own
process, 50–200 ms a request): ``claim`` (the claiming UPDATE), ``prepare`` (load, check,
render, write back), ``send`` (``SmsChannel.send``: the SDK and its HTTP client),
``record`` (the group commit's transaction), ``deliver, rest`` (everything else a sender thread
does around its send: rate limit, last look, breaker, waiting for its commit, log, metrics) and
``other`` (the process's CPU outside these: the claim loop, thread hand-offs, the GC).

Floors, with no dispatcher and no database (``threads`` requests in flight): ``SmsChannel.send``
(the official SDK over our pooled client), the SDK's ``create_async`` over its own
``AsyncTwilioHttpClient`` (aiohttp), and a bare urllib3 POST of the same form.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from bench.common import (
    add_patients,
    bench_app,
    create_times,
    drain_timed,
    queue_notice,
    require_sent,
)
from notifier.channels.base import OutgoingMessage
from notifier.channels.sms import SmsChannel
from notifier.delivery import dispatcher as dispatching
from notifier.delivery import outcomes, preparation
from notifier.storage import deliveries
from notifier_sandbox.twilio_control import FakeTwilioProcess

BODY = "Closed today for snow. Reopens tomorrow 8 AM."


class Stages:
    """Thread CPU spent inside some functions, added up across threads."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []

    def time(self, owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with self._lock:
                    self.spent[stage] += spent

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


@contextmanager
def timed_stages() -> Iterator[Stages]:
    stages = Stages()
    stages.time(deliveries, "claim", "claim")
    stages.time(preparation.Preparer, "prepare", "prepare")
    stages.time(SmsChannel, "send", "send")
    stages.time(outcomes.OutcomeWriter, "_store", "record")
    stages.time(dispatching.Dispatcher, "deliver", "deliver")
    try:
        yield stages
    finally:
        stages.restore()


def dispatch(
    twilio: FakeTwilioProcess, count: int, threads: int
) -> tuple[float, float, Counter[str]]:
    """One unlimited broadcast of ``count`` texts: (wall seconds, process CPU, stage CPU)."""
    since = int(twilio.control.request_count()["count"])
    with (
        timed_stages() as stages,
        bench_app(
            twilio,
            sms_rate_per_second=1_000_000,
            dispatch_concurrency=threads,
            dispatch_batch_size=1000,
        ) as app,
    ):
        add_patients(app, count)
        queue_notice(app)
        wall, cpu = drain_timed(app)
        spent = Counter(stages.spent)
    require_sent("dispatch_cpu", len(create_times(twilio, since)), count)
    return wall, cpu, spent


def stage_table(twilio: FakeTwilioProcess, count: int, rounds: int, threads: int) -> dict[str, Any]:
    dispatch(twilio, min(count, 1000), threads)  # warm-up: imports, compiled SQL, templates
    wall = cpu = 0.0
    spent: Counter[str] = Counter()
    for _ in range(rounds):
        w, c, s = dispatch(twilio, count, threads)
        wall, cpu = wall + w, cpu + c
        spent.update(s)
    sent = count * rounds

    def ms(seconds: float) -> float:
        return round(seconds / sent * 1000, 3)

    rest = spent["deliver"] - spent["send"]
    other = cpu - spent["claim"] - spent["prepare"] - spent["record"] - spent["deliver"]
    return {
        "messages": sent,
        "threads": threads,
        "per_s": round(sent / wall, 1),
        "cpu_ms_per_sms": ms(cpu),
        "stages_ms_per_sms": {
            "claim": ms(spent["claim"]),
            "prepare": ms(spent["prepare"]),
            "send": ms(spent["send"]),
            "record": ms(spent["record"]),
            "deliver, rest": ms(rest),
            "other": ms(other),
        },
    }


def _floor(count: int, run: Callable[[], None]) -> dict[str, float]:
    run()  # warm-up
    started, cpu = time.monotonic(), time.process_time()
    run()
    wall, cpu = time.monotonic() - started, time.process_time() - cpu
    return {"per_s": round(count / wall, 1), "cpu_ms": round(cpu / count * 1000, 3)}


def floors(twilio: FakeTwilioProcess, count: int, threads: int) -> dict[str, dict[str, float]]:
    info = twilio.info
    with bench_app(twilio, dispatch_concurrency=threads) as app:
        channel = SmsChannel(app.settings)
    messages = [OutgoingMessage(i, f"+1540{2000000 + i}", BODY) for i in range(count)]

    def sdk_threads() -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(channel.send, messages))

    def sdk_async() -> None:
        from twilio.http.async_http_client import AsyncTwilioHttpClient
        from twilio.rest import Client

        async def main() -> None:
            http = AsyncTwilioHttpClient(pool_connections=True, max_retries=0)
            client = Client(
                info["account_sid"],
                info["auth_token"],
                http_client=http,
                environment={"NOTIFIER": "1"},
            )
            client.api.base_url = info["base_url"]
            room = asyncio.Semaphore(threads)

            async def one(message: OutgoingMessage) -> None:
                async with room:
                    await client.messages.create_async(
                        to=message.to, from_=info["from_number"], body=message.text
                    )

            await asyncio.gather(*(one(m) for m in messages))
            await http.close()

        asyncio.run(main())

    def bare_urllib3() -> None:
        from urllib.parse import urlencode

        import urllib3

        pool = urllib3.PoolManager(maxsize=threads, block=False, retries=False)
        auth = f"{info['account_sid']}:{info['auth_token']}"
        headers = urllib3.util.make_headers(basic_auth=auth)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        url = f"{info['base_url']}/2010-04-01/Accounts/{info['account_sid']}/Messages.json"

        def post(message: OutgoingMessage) -> bytes:
            form = {"To": message.to, "From": info["from_number"], "Body": message.text}
            return pool.request("POST", url, body=urlencode(form), headers=headers).data

        with ThreadPoolExecutor(threads) as executor:
            list(executor.map(post, messages))

    try:
        return {
            "SmsChannel.send (SDK, pooled urllib3, threads)": _floor(count, sdk_threads),
            "SDK create_async (AsyncTwilioHttpClient)": _floor(count, sdk_async),
            "bare urllib3 POST (threads)": _floor(count, bare_urllib3),
        }
    finally:
        channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch_cpu", description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=128)
    parser.add_argument("--no-floors", action="store_true")
    args = parser.parse_args(argv)
    for name in list(os.environ):  # no developer settings leak into the measurements
        if name.startswith("NOTIFIER_"):
            del os.environ[name]
    os.environ["NOTIFIER_CONFIG_FILE"] = os.devnull
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    from bench.common import twilio_server

    with twilio_server((50.0, 200.0)) as twilio:  # type: ignore[arg-type]
        row = stage_table(twilio, args.messages, args.rounds, args.threads)
        print(
            f"dispatcher, no rate limit, {row['threads']} threads: {row['messages']} SMS, "
            f"{row['per_s']}/s, our CPU {row['cpu_ms_per_sms']} ms per SMS "
            f"({row['cpu_ms_per_sms']:.3f} CPU-s per 1,000)"
        )
        for stage, value in row["stages_ms_per_sms"].items():
            print(f"  {stage:<16} {value:>6.3f} ms")
        if not args.no_floors:
            print(f"alone, {args.threads} in flight, {args.messages} requests:")
            for name, floor in floors(twilio, args.messages, args.threads).items():
                print(f"  {name:<48} {floor['per_s']:>7}/s {floor['cpu_ms']:>6.3f} ms CPU each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
