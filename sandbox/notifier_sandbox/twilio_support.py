"""Helpers for the fake Twilio Messages API (see ``twilio_server.py``).

Constants and error texts, date/segment helpers, the status-transition timer (``StatusEngine``)
and the webhook sender pool (``CallbackDispatcher``).  Nothing here knows about HTTP serving.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import itertools
import queue
import re
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from datetime import time as dtime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

import smsutil

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
E164_RE = re.compile(r"^(?:whatsapp:)?\+[1-9]\d{6,14}$")
ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID_RE = re.compile(r"^MG[0-9a-fA-F]{32}$")

# Twilio test-credential magic numbers (facts §2.6).
MAGIC_FROM = {"+15005550001": 21212, "+15005550007": 21606, "+15005550008": 21611}
MAGIC_TO = {
    "+15005550001": 21211,
    "+15005550002": 21612,
    "+15005550003": 21408,
    "+15005550004": 21610,
    "+15005550009": 21614,
}

OPT_OUT_KEYWORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN_KEYWORDS = {"START", "YES", "UNSTOP"}
HELP_KEYWORDS = {"HELP", "INFO"}
AUTO_REPLIES = {
    "STOP": "You have successfully been unsubscribed. You will not receive any more messages "
    "from this number. Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this number. "
    "Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
    "HELP": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}
TOLL_FREE_PREFIXES = tuple(f"+1{n}" for n in ("800", "833", "844", "855", "866", "877", "888"))

# Default messages per error code; several texts are guesses (facts §9).
ERROR_MESSAGES = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20004: "Method not allowed",
    20009: "Cannot delete message because it is in progress",
    20404: "The requested resource {path} was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number: {to}",
    21212: "Invalid 'From' Phone Number: {from_}",
    21220: "Invalid status for this message",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number: {to}",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided ({from_}) is not a valid message-capable Twilio "
    "phone number for this destination.",
    21609: "Invalid 'StatusCallback'",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone "
    "number: {from_} via SMS.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
    21624: "Invalid validity period value",
    35118: "MessagingServiceSid is required to schedule a message",
    30001: "Queue overflow",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30036: "Validity Period Expired",
}
DEFAULT_FATE_CODES = {"undelivered": 30003, "failed": 30001}
STATUS_DEFAULT_CODES = {429: 20429, 500: 20500, 502: 20500, 503: 20503}

_MIDNIGHT = dtime(0, 0, tzinfo=UTC)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ApiError(Exception):
    """A Twilio-style error response: ``{code, message, more_info, status}``."""

    def __init__(self, status: int, code: int, message: str | None = None, **fmt: Any):
        text = message if message is not None else ERROR_MESSAGES.get(code, "Error")
        if fmt:
            text = text.format(**fmt)
        super().__init__(text)
        self.status, self.code, self.message = status, code, text

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.status)


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def rfc2822(ts: float) -> str:
    t = time.gmtime(ts)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def parse_filter_date(value: str) -> date | datetime:
    """``YYYY-MM-DD`` → date; ``YYYY-MM-DDThh:mm:ss[Z]`` → aware UTC datetime."""
    value = value.strip()
    if len(value) == 10:
        return date.fromisoformat(value)
    dt = datetime.fromisoformat(value)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def date_matches(ts: float, op: str, wanted: date | datetime) -> bool:
    """Twilio list filters: ``DateSent`` (=), ``DateSent<`` (<=), ``DateSent>`` (>=)."""
    sent = datetime.fromtimestamp(int(ts), UTC)
    if op == "=" and isinstance(wanted, datetime) and wanted.timetz() == _MIDNIGHT:
        wanted = wanted.date()  # the SDK serialises a date as YYYY-MM-DDT00:00:00Z
    a: date | datetime = sent if isinstance(wanted, datetime) else sent.date()
    if op == "=":
        return a == wanted
    return a <= wanted if op == "<" else a >= wanted


@lru_cache(maxsize=8192)
def count_segments(body: str) -> int:
    return len(smsutil.split(body).parts) if body else 1


def valid_callback_url(url: str) -> bool:
    if len(url) > 4000:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and "_" not in host


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def first(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


def page_uri(path: str, params: dict[str, Any]) -> str:
    return f"{path}?{urlencode({k: v for k, v in params.items() if v is not None})}"


class Tracker:
    """Counts outstanding work (transitions + callbacks) so ``flush()`` can wait for zero."""

    def __init__(self) -> None:
        self._n = 0
        self._cond = threading.Condition()

    def add(self, n: int = 1) -> None:
        with self._cond:
            self._n += n

    def done(self, n: int = 1) -> None:
        with self._cond:
            self._n -= n
            if self._n <= 0:
                self._n = 0
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._n == 0, timeout)


class StatusEngine:
    """One thread running due callables from a heap (no thread per message).

    ``counted`` entries are tracked by ``Tracker`` (``flush`` waits for them); uncounted ones
    (scheduled sends far in the future) are not, unless fast-forwarded.
    """

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._heap: list[tuple[float, int, bool, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._run, name="fake-twilio-engine", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def schedule(self, delay: float, fn: Callable[[], None], counted: bool = True) -> None:
        if counted:
            self._tracker.add()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), counted, fn))
            self._cond.notify()

    def fast_forward(self) -> None:
        """Make every pending entry due now (they become counted)."""
        with self._cond:
            uncounted = sum(1 for e in self._heap if not e[2])
            self._tracker.add(uncounted)
            self._heap = [(0.0, seq, True, fn) for _, seq, _, fn in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            counted = sum(1 for e in self._heap if e[2])
            self._heap.clear()
        self._tracker.done(counted)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._running:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if not self._running:
                    return
                now = time.monotonic()
                batch = []
                while self._heap and self._heap[0][0] <= now and len(batch) < 512:
                    batch.append(heapq.heappop(self._heap))
            for _, _, counted, fn in batch:
                try:
                    fn()
                except Exception:  # a broken transition must not kill the engine
                    pass
                finally:
                    if counted:
                        self._tracker.done()


def post_form(
    conns: dict[tuple[str, str, int], http.client.HTTPConnection],
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    timeout: float,
) -> tuple[int | None, str | None, str | None]:
    """POST a form to ``url`` reusing keep-alive connections; returns (status, body, error)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = (parts.scheme, parts.hostname or "", port)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    data = urlencode(params).encode()
    for attempt in range(2):
        conn = conns.pop(key, None)
        reused = conn is not None
        if conn is None:
            if parts.scheme == "https":
                ctx = ssl._create_unverified_context()  # loopback test receivers only
                conn = http.client.HTTPSConnection(key[1], port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(key[1], port, timeout=timeout)
        try:
            conn.request("POST", target, body=data, headers=headers)
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            if resp.will_close:
                conn.close()
            else:
                conns[key] = conn
            return resp.status, body, None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            # A stale keep-alive connection fails before the request is read: retry once.
            stale = isinstance(exc, ConnectionResetError | BrokenPipeError)
            if attempt == 0 and reused and stale:
                continue
            return None, None, f"{type(exc).__name__}: {exc}"
    return None, None, "unreachable"


class CallbackDispatcher:
    """A few worker threads POSTing signed webhooks.  Jobs with the same key (message sid) go to
    the same worker, so one message's callbacks leave in order unless deliberately reordered."""

    def __init__(self, workers: int, tracker: Tracker, timeout: float) -> None:
        self._tracker = tracker
        self._timeout = timeout
        self._queues: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(workers)]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i, q in enumerate(self._queues):
            t = threading.Thread(target=self._run, args=(q,), name=f"fake-twilio-cb-{i}")
            t.daemon = True
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def submit(self, key: str, job: Callable[[dict], None]) -> None:
        """``job(conns)`` runs on the worker owning ``key`` with that worker's connection cache."""
        self._tracker.add()
        self._queues[hash(key) % len(self._queues)].put(job)

    def _run(self, q: queue.SimpleQueue) -> None:
        conns: dict = {}
        while True:
            job = q.get()
            if job is None:
                break
            try:
                job(conns)
            except Exception:  # never let a receiver problem kill the worker
                pass
            finally:
                self._tracker.done()
        for conn in conns.values():
            conn.close()

    @property
    def timeout(self) -> float:
        return self._timeout
