"""A local fake of Twilio's Messages API that the real ``twilio`` SDK cannot tell from the real one.

It follows the behaviour of Twilio's Messages API as documented by Twilio.  Usage::

    with FakeTwilio() as fake:
        client = Client(fake.account_sid, fake.auth_token, environment={"TWILIO_FAKE": "1"})
        client.api.base_url = fake.base_url
        client.messages.create(to="+15551234567", from_=fake.from_number, body="hi")

Standalone (for tests driving another process; control plane in ``twilio_control.py``)::

    python -m notifier_sandbox.twilio_server --port 8765 \
        [--latency-ms 50 200] [--callback-delay 0.05] [--rate-limit 10 [--rate-limit-burst 10]]

Rate limit (``rate_limit=R`` / ``--rate-limit R``): a create that would take its sender (From,
else MessagingServiceSid; or the whole account) past R segments/s, with a burst of
``rate_limit_burst`` (default one second's worth, max(1, R)), is answered 429/20429 "Too Many
Requests", not processed, and counted (``rate_limited``). Twilio itself *queues* a sender's
segments beyond its MPS (``enforce_throughput`` models that) and answers 429/20429 to requests
beyond the account's API concurrency (facts §6); this mode answers overshoot the way Twilio
answers a request it will not process, so that a benchmark can count it.

Files: this one (state, config, test controls, CLI); ``twilio_api.py`` (REST behaviour, status
engine steps, callbacks, inbound); ``twilio_http.py`` (HTTP server/handler); ``twilio_control.py``
(``/__fake__/`` routes, ``RemoteFakeTwilio``, ``FakeTwilioProcess``); ``twilio_support.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from twilio.request_validator import RequestValidator

from notifier_sandbox.twilio_api import MessagesApi, _Meta
from notifier_sandbox.twilio_calls import CallsApi
from notifier_sandbox.twilio_http import FakeHandler, FakeHTTPServer
from notifier_sandbox.twilio_support import CallbackDispatcher, StatusEngine, Tracker

__all__ = ["FakeTwilio", "main"]
_REGEX_KEYS = ("path_regex", "query_regex", "body_regex")


class FakeTwilio(CallsApi, MessagesApi):
    """In-memory, thread-safe fake of ``/2010-04-01/Accounts/{AC}/Messages`` (see module doc)."""

    queue_limit_seconds = 36000  # 21611 threshold: "10 hours' worth of message segments"
    BODY_TOO_LONG_CODE = 21617  # facts §8.3 #5 (a guess): override per instance if needed
    VALIDITY_PERIOD_CODE = 21624  # facts §8.3 #6 (21624 or 90007)

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        senders: dict[str, float] | list[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        callback_delay: float = 0.0,
        latency: tuple[float, float] | None = None,
        seed: int | None = 0,
        *,
        enforce_queue_limit: bool = False,
        enforce_throughput: bool = False,
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_scope: str = "sender",
        messaging_services: dict[str, dict[str, Any]] | None = None,
        inbound_url: str | None = None,
        inbound_urls: dict[str, str] | None = None,
        reorder: bool = False,
        duplicate: bool = False,
        callback_workers: int = 4,
        callback_timeout: float = 5.0,
        clock: Any = None,
        log_requests: bool = False,
    ) -> None:
        self._rng = random.Random(seed)
        self._latency_rng = random.Random(None if seed is None else f"{seed}-latency")
        self._order_rng = random.Random(None if seed is None else f"{seed}-order")
        self._account_sid = account_sid or f"AC{self._rng.getrandbits(128):032x}"
        self._auth_token = auth_token or f"{self._rng.getrandbits(128):032x}"
        if senders is None:
            senders = {"+15005550006": 1.0}
        elif not isinstance(senders, dict):
            senders = dict.fromkeys(senders, 1.0)
        self._senders: dict[str, float] = dict(senders)
        self._services = {k: dict(v) for k, v in (messaging_services or {}).items()}
        self._owned = set(self._senders)
        for svc in self._services.values():
            self._owned.update(svc.get("senders", ()))
        self.host, self._port = host, port
        self.callback_delay = callback_delay
        self.latency = latency
        self.enforce_queue_limit = enforce_queue_limit
        self.enforce_throughput = enforce_throughput
        # Creates beyond ``rate_limit`` segments/s per sender get 429/20429 (``_rate_charge``).
        self.rate_limit = rate_limit
        self.rate_limit_burst = rate_limit_burst  # None: one second's worth, max(1, rate)
        if rate_limit_scope not in ("sender", "account"):
            raise ValueError(
                f"rate_limit_scope must be 'sender' or 'account': {rate_limit_scope!r}"
            )
        self.rate_limit_scope = rate_limit_scope  # "sender" (From, else MG) or "account"
        self.inbound_url = inbound_url
        self.inbound_urls = dict(inbound_urls or {})
        self.reorder, self.duplicate = reorder, duplicate
        self.callback_timeout = callback_timeout
        self.lost_callbacks: set[str] = set()  # statuses whose callbacks never arrive
        self.log_requests = log_requests
        self._clock = clock or time.time
        self._offset = 0.0
        self._validator = RequestValidator(self._auth_token)
        self._lock = threading.RLock()
        self._gen = 0
        self._tracker = Tracker()
        self._engine = StatusEngine(self._tracker)
        self._dispatcher = CallbackDispatcher(callback_workers, self._tracker, callback_timeout)
        self._server: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._fault_ids = 0
        self._clear_state()

    def _clear_state(self) -> None:
        self._messages: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, _Meta] = {}
        self._requests: list[dict[str, Any]] = []
        self._callbacks: list[dict[str, Any]] = []
        self._inbound: list[dict[str, Any]] = []
        self._auto_replies: list[dict[str, Any]] = []
        self._opt_outs: set[tuple[str, str]] = set()
        self._faults: list[dict[str, Any]] = []
        self._geo_blocked: set[str] = set()
        self._busy_until: dict[str, float] = {}
        self._rate_tat: dict[str, float] = {}  # per sender: when its bucket is full again
        self._rate_limited: Counter[str] = Counter()  # 429s answered, per sender
        self._offset = 0.0
        self._clear_calls()

    # ------------------------------------------------------------------ lifecycle / properties
    def start(self) -> FakeTwilio:
        if self._server is not None:
            return self
        self._server = FakeHTTPServer((self.host, self._port), FakeHandler, self)
        self._engine.start()
        self._dispatcher.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = "fake-twilio-http"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        self._engine.stop()
        self._dispatcher.stop()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started")
        host, port = self._server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def account_sid(self) -> str:
        return self._account_sid

    @property
    def auth_token(self) -> str:
        return self._auth_token

    @property
    def from_number(self) -> str:
        return next(iter(self._senders))

    @property
    def senders(self) -> dict[str, float]:
        return dict(self._senders)

    @property
    def messages(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {sid: dict(m) for sid, m in self._messages.items()}

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    @property
    def callbacks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._callbacks)

    @property
    def inbound_webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._inbound)

    @property
    def auto_replies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._auto_replies)

    @property
    def opt_outs(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._opt_outs)

    @property
    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: v for k, v in r.items() if k != "_re"} for r in self._faults]

    @property
    def rate_limited(self) -> dict[str, Any]:
        """The 429/20429 answers of the rate limit: {"count": n, "by_sender": {sender: n}}."""
        with self._lock:
            return {
                "count": sum(self._rate_limited.values()),
                "by_sender": dict(self._rate_limited),
            }

    def received_creates(self) -> list[dict[str, Any]]:
        """Request records of create calls that created a message (even if the reply was lost)."""
        with self._lock:
            return [r for r in self._requests if r["kind"] == "create" and r["message_sid"]]

    def info(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.from_number,
            "senders": self.senders,
            "messaging_services": {k: v.get("senders", []) for k, v in self._services.items()},
            "pid": os.getpid(),
        }

    # ------------------------------------------------------------------ test controls
    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's wall clock (timestamps, date filters); transition timers are real."""
        with self._lock:
            self._offset += seconds

    def flush(self, timeout: float = 10.0, fast_forward: bool = False) -> None:
        """Wait until every pending transition and callback is done (TimeoutError otherwise).
        ``fast_forward`` makes all pending transitions due now (incl. scheduled sends)."""
        if fast_forward:
            self._engine.fast_forward()
        if not self._tracker.wait(timeout):
            raise TimeoutError(f"FakeTwilio.flush: work still pending after {timeout}s")

    def reset(self) -> None:
        """Forget messages, logs, opt-outs, faults, geo blocks and clock offset (not config)."""
        with self._lock:
            self._gen += 1
            self._clear_state()
        self._engine.clear()

    def fault(
        self,
        match: dict[str, Any] | None = None,
        times: int | None = 1,
        response: dict[str, Any] | None = None,
    ) -> int:
        """Add a fault rule (checked before auth, first match wins); returns its id.

        ``match`` keys (all optional, AND-ed; None = every REST request): method, path_regex
        (searched in the path), query_regex (in the raw query string), to, from_ (or from),
        body_regex (searched in the ``Body`` form field).  ``times=None`` means always.
        ``response``: {"status", "code"?, "message"?, "retry_after"?, "raw_body"?, "headers"?}
        | {"delay_s"} | {"drop": True} | {"fate": "undelivered"|"failed"|"sent", "error_code"?}
        | {"drop_after_create": True} | {"delay_after_create_s"} | {"reorder"/"duplicate": True}.
        Rules without status/drop/delay_s only ever match create requests.
        """
        match = dict(match or {})
        if "from" in match:
            match["from_"] = match.pop("from")
        unknown = set(match) - {"method", "path_regex", "query_regex", "to", "from_", "body_regex"}
        if unknown:
            raise ValueError(f"unknown match keys: {sorted(unknown)}")
        compiled = {k: re.compile(match[k]) for k in _REGEX_KEYS if match.get(k)}
        fate = (response or {}).get("fate")
        if fate not in (None, "delivered", "undelivered", "failed", "sent"):
            raise ValueError(f"unknown fate {fate!r}")
        with self._lock:
            self._fault_ids += 1
            rule = {"id": self._fault_ids, "match": match, "times": times, "hits": 0}
            rule["response"] = dict(response or {"status": 500})
            rule["_re"] = compiled
            # Create-only outcomes never get consumed by a GET/other request.
            rule["create_only"] = not (set(rule["response"]) & {"status", "drop", "delay_s"})
            self._faults.append(rule)
            return rule["id"]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def opt_out(self, to: str, scope: str | None = None) -> None:
        """Block sends to ``to`` from ``scope`` (a From number or MG sid); None = every sender."""
        with self._lock:
            self._opt_outs.add((to, scope or "*"))

    def opt_in(self, to: str, scope: str | None = None) -> None:
        with self._lock:
            self._opt_outs.discard((to, scope or "*"))

    def lose_callbacks(self, *statuses: str) -> None:
        """Status callbacks for these statuses are lost on the way (recorded, never posted),
        as when the receiving service was down: the message's status moves on all the same,
        and a fetch or list shows it."""
        with self._lock:
            self.lost_callbacks = set(statuses)

    def geo_block(self, prefix: str) -> None:
        """Creates whose To starts with ``prefix`` (e.g. "+44") get 400/21408."""
        with self._lock:
            self._geo_blocked.add(prefix)


# ---------------------------------------------------------------------- standalone
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m notifier_sandbox.twilio_server", description=__doc__
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral (see printed base_url)")
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--sender", action="append", metavar="NUMBER[=MPS]", help="repeatable")
    p.add_argument("--latency-ms", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--callback-delay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None, help="default: random (fresh SIDs per run)")
    p.add_argument("--inbound-url")
    p.add_argument("--messaging-services", help='JSON: {"MG…": {"senders": [...], ...}}')
    p.add_argument("--enforce-queue-limit", action="store_true")
    p.add_argument("--enforce-throughput", action="store_true")
    p.add_argument(
        "--rate-limit",
        type=float,
        metavar="R",
        help="answer 429/20429 to creates beyond R segments/s per sender (Body segments)",
    )
    p.add_argument("--rate-limit-burst", type=float, metavar="B", help="default: max(1, R)")
    p.add_argument("--rate-limit-scope", choices=["sender", "account"], default="sender")
    p.add_argument("--reorder", action="store_true")
    p.add_argument("--duplicate", action="store_true")
    p.add_argument("--log", action="store_true", help="log each request to stderr")
    a = p.parse_args(argv)
    senders = None
    if a.sender:
        senders = {}
        for item in a.sender:
            number, _, mps = item.partition("=")
            senders[number] = float(mps or 1)
    fake = FakeTwilio(
        account_sid=a.account_sid,
        auth_token=a.auth_token,
        senders=senders,
        host=a.host,
        port=a.port,
        callback_delay=a.callback_delay,
        latency=(a.latency_ms[0] / 1000, a.latency_ms[1] / 1000) if a.latency_ms else None,
        seed=a.seed,
        enforce_queue_limit=a.enforce_queue_limit,
        enforce_throughput=a.enforce_throughput,
        rate_limit=a.rate_limit,
        rate_limit_burst=a.rate_limit_burst,
        rate_limit_scope=a.rate_limit_scope,
        messaging_services=json.loads(a.messaging_services) if a.messaging_services else None,
        inbound_url=a.inbound_url,
        reorder=a.reorder,
        duplicate=a.duplicate,
        log_requests=a.log,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fake.start()
    print(json.dumps(fake.info()), flush=True)
    while not stop.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
