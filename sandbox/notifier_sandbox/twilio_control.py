"""Control plane of the fake Twilio server (``/__fake__/*``) and clients for other processes.

Routes (JSON in, JSON out, no auth; never recorded in ``fake.requests``):

    GET    /__fake__/health                      {"ok": true}
    GET    /__fake__/info                        base_url, account_sid, auth_token, from_number, …
    GET    /__fake__/messages[?to=&from=&status=&direction=]   list of message JSON (oldest first)
    GET    /__fake__/messages/count              {"count": n, "by_status": {...}}
    GET    /__fake__/messages/{sid}              one message (404 if unknown)
    GET    /__fake__/requests[?since=i&kind=create&method=&path_regex=]   request records
    GET    /__fake__/requests/count              {count, creates, create_attempts, rate_limited,
                                                 by_status}
    GET    /__fake__/rate_limited                429/20429 answers of the rate limit:
                                                 {"count": n, "by_sender": {sender: n}}
    GET    /__fake__/creates                     records of creates that created a message
    GET    /__fake__/callbacks[?since=i]         status-callback records
    GET    /__fake__/callbacks/count             {"count": n}
    GET    /__fake__/inbound_webhooks            inbound webhook records
    GET    /__fake__/auto_replies                STOP/START/HELP auto replies
    GET    /__fake__/opt_outs                    [[to, scope], ...] (scope "*" = all senders)
    GET    /__fake__/faults                      fault rules with remaining times and hits
    POST   /__fake__/fault                       {"match": {…}, "times": 1|null, "response": {…}}
    DELETE /__fake__/faults                      remove every fault rule
    POST   /__fake__/reset                       forget everything (not config)
    POST   /__fake__/opt_out | /__fake__/opt_in  {"to": "+1…", "scope": "+1…"|"MG…"|null}
    POST   /__fake__/geo_block                   {"prefix": "+44"}
    POST   /__fake__/inbound                     {"from", "to", "body": "STOP", "url"?} → record
    POST   /__fake__/flush                       {"timeout": 10, "fast_forward": false} → 200 | 504
    POST   /__fake__/advance                     {"seconds": 86400}
    POST   /__fake__/config                      any of callback_delay, latency ([min_s, max_s] or
                                                 null), reorder, duplicate, enforce_queue_limit,
                                                 enforce_throughput, inbound_url, log_requests,
                                                 rate_limit, rate_limit_burst, rate_limit_scope
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

CONFIG_KEYS = {
    "callback_delay",
    "latency",
    "reorder",
    "duplicate",
    "enforce_queue_limit",
    "enforce_throughput",
    "inbound_url",
    "log_requests",
    "rate_limit",
    "rate_limit_burst",
    "rate_limit_scope",
}


def _since(items: list, query: dict[str, str]) -> list:
    return items[int(query.get("since", 0)) :]


def handle(fake: Any, method: str, path: str, query: dict[str, list[str]], raw: bytes):
    """Serve one control-plane request; returns (http_status, json_obj)."""
    route = path[len("/__fake__/") :].strip("/")
    q = {k: v[0] for k, v in query.items() if v}
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return 400, {"error": "body must be JSON"}
    if method == "GET":
        return _get(fake, route, q)
    if method == "DELETE" and route == "faults":
        fake.clear_faults()
        return 200, {"ok": True}
    if method != "POST":
        return 405, {"error": f"{method} not allowed on {path}"}
    if route == "fault":
        try:
            rule_id = fake.fault(data.get("match"), data.get("times", 1), data.get("response"))
        except (ValueError, re.error) as exc:
            return 400, {"error": str(exc)}
        return 200, {"id": rule_id}
    if route == "faults/clear":
        fake.clear_faults()
    elif route == "reset":
        fake.reset()
    elif route in ("opt_out", "opt_in"):
        getattr(fake, route)(data["to"], data.get("scope"))
    elif route == "geo_block":
        fake.geo_block(data["prefix"])
    elif route == "inbound":
        sender = data.get("from") or data.get("from_")
        return 200, fake.inbound(sender, data["to"], data["body"], data.get("url"))
    elif route == "flush":
        try:
            fake.flush(float(data.get("timeout", 10.0)), bool(data.get("fast_forward", False)))
        except TimeoutError as exc:
            return 504, {"ok": False, "error": str(exc)}
    elif route == "advance":
        fake.advance(float(data["seconds"]))
    elif route == "config":
        unknown = set(data) - CONFIG_KEYS
        if unknown:
            return 400, {"error": f"unknown config keys: {sorted(unknown)}"}
        for key, value in data.items():
            setattr(fake, key, tuple(value) if key == "latency" and value else value)
    else:
        return 404, {"error": f"no control route POST {path}"}
    return 200, {"ok": True}


def _get(fake: Any, route: str, q: dict[str, str]):
    if route == "health":
        return 200, {"ok": True}
    if route == "info":
        return 200, fake.info()
    if route == "messages":
        out = list(fake.messages.values())
        for key, field in (("to", "to"), ("from", "from"), ("status", "status")):
            if key in q:
                out = [m for m in out if m[field] == q[key]]
        if "direction" in q:
            out = [m for m in out if m["direction"] == q["direction"]]
        return 200, out
    if route == "messages/count":
        msgs = fake.messages.values()
        return 200, {"count": len(msgs), "by_status": dict(Counter(m["status"] for m in msgs))}
    if route.startswith("messages/"):
        msg = fake.messages.get(route.split("/", 1)[1])
        return (200, msg) if msg else (404, {"error": "no such message"})
    if route == "requests":
        out = _since(fake.requests, q)
        if "kind" in q:
            out = [r for r in out if r["kind"] == q["kind"]]
        if "method" in q:
            out = [r for r in out if r["method"] == q["method"].upper()]
        if "path_regex" in q:
            out = [r for r in out if re.search(q["path_regex"], r["path"])]
        return 200, out
    if route == "requests/count":
        reqs = fake.requests
        attempts = [r for r in reqs if r["kind"] == "create"]
        return 200, {
            "count": len(reqs),
            "create_attempts": len(attempts),
            "creates": sum(1 for r in attempts if r["message_sid"]),
            "rate_limited": fake.rate_limited["count"],
            "by_status": dict(Counter(str(r["status"]) for r in reqs)),
        }
    if route == "creates":
        return 200, fake.received_creates()
    if route == "rate_limited":
        return 200, fake.rate_limited
    if route == "callbacks":
        return 200, _since(fake.callbacks, q)
    if route == "callbacks/count":
        return 200, {"count": len(fake.callbacks)}
    if route == "inbound_webhooks":
        return 200, fake.inbound_webhooks
    if route == "auto_replies":
        return 200, fake.auto_replies
    if route == "opt_outs":
        return 200, sorted(fake.opt_outs)
    if route == "faults":
        return 200, fake.faults
    return 404, {"error": f"no control route GET /__fake__/{route}"}


class RemoteFakeTwilio:
    """Drive a fake running in another process through its ``/__fake__/`` routes (stdlib only)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, route: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(f"{self.base_url}/__fake__/{route}", data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise RuntimeError(f"{method} /__fake__/{route} -> {exc.code}: {body}") from None

    def info(self) -> dict[str, Any]:
        return self.call("GET", "info")

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in filters.items())
        return self.call("GET", f"messages?{qs}" if qs else "messages")

    def request_count(self) -> dict[str, Any]:
        return self.call("GET", "requests/count")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self.call("GET", f"requests?since={since}")

    def received_creates(self) -> list[dict[str, Any]]:
        return self.call("GET", "creates")

    def rate_limited(self) -> dict[str, Any]:
        """{"count": n, "by_sender": {sender: n}}: the rate limit's 429/20429 answers."""
        return self.call("GET", "rate_limited")

    def callbacks(self, since: int = 0) -> list[dict[str, Any]]:
        return self.call("GET", f"callbacks?since={since}")

    def fault(self, match=None, times: int | None = 1, response=None) -> int:
        payload = {"match": match, "times": times, "response": response}
        return self.call("POST", "fault", payload)["id"]

    def clear_faults(self) -> None:
        self.call("DELETE", "faults")

    def reset(self) -> None:
        self.call("POST", "reset", {})

    def opt_out(self, to: str, scope: str | None = None) -> None:
        self.call("POST", "opt_out", {"to": to, "scope": scope})

    def opt_in(self, to: str, scope: str | None = None) -> None:
        self.call("POST", "opt_in", {"to": to, "scope": scope})

    def inbound(self, from_: str, to: str, body: str, url: str | None = None) -> dict[str, Any]:
        return self.call("POST", "inbound", {"from": from_, "to": to, "body": body, "url": url})

    def flush(self, timeout: float = 10.0, fast_forward: bool = False) -> None:
        self.call("POST", "flush", {"timeout": timeout, "fast_forward": fast_forward})

    def advance(self, seconds: float) -> None:
        self.call("POST", "advance", {"seconds": seconds})

    def config(self, **settings: Any) -> None:
        self.call("POST", "config", settings)


REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeTwilioProcess:
    """Run ``python -m notifier_sandbox.twilio_server`` as a subprocess (context manager).

    ``info`` is the JSON line it printed (base_url, account_sid, auth_token, from_number, …)
    and ``control`` a ``RemoteFakeTwilio`` for it.
    """

    def __init__(self, *args: str, python: str = sys.executable, startup_timeout: float = 15.0):
        self.argv = [python, "-m", "notifier_sandbox.twilio_server", *args]
        if "--port" not in args:
            self.argv += ["--port", "0"]
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> FakeTwilioProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + self.startup_timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    self.info = json.loads(line)
                    return self
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("fake Twilio process did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    @property
    def base_url(self) -> str:
        return self.info["base_url"]

    @property
    def control(self) -> RemoteFakeTwilio:
        return RemoteFakeTwilio(self.base_url)

    def __enter__(self) -> FakeTwilioProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
