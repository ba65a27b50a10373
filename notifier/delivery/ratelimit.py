"""Rate limits: a token bucket in one process (never more than ``rate`` units a second, bursts of
at most one second's worth), and a timeline shared by a fleet of workers through the database."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from notifier import metrics

log = logging.getLogger(__name__)


class Limiter(Protocol):
    rate: float

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool: ...

    def close(self) -> None: ...


class TokenBucket:
    """Callers reserve tokens up front (the balance may go negative) and sleep off the debt, so
    waiting callers are served in order and a 3-segment SMS costs three times a 1-segment one."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "",
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.name = name  # the channel, for the rate-limit wait metrics
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens now; return how long the caller must wait before acting."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= cost
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool:
        """Block until ``cost`` tokens are ours. False if ``stop`` was set while waiting."""
        return _wait(self.reserve(cost), stop, self._sleep, self.name)

    def close(self) -> None:
        """Nothing to release (``Limiter``'s contract)."""


Grant = Callable[[str, float, float], tuple[float, float]]
"""(sender, seconds, burst seconds) → (end of the reserved span, the shared clock now), in
shared-clock seconds (``storage.send_rates.grant``)."""

Job = Callable[[], None]


class SharedTimeline:
    """One rate for the whole fleet: every worker reserves spans of one shared timeline per
    sender (``storage.send_rates.grant``, one atomic statement) and sends each segment in its own
    slot, ``1/rate`` apart. Spans never overlap, so the fleet together never exceeds the rate,
    however many workers join. A span is fetched ``batch_seconds`` at a time (the database is not
    asked per message), or less when the worker has fewer messages in hand (``demand``): a
    worker near the end of its work takes no slots it cannot use.

    The next span is fetched ahead, timed by the current one's end rather than by how much of it
    was handed out: when a worker that keeps up with the clock takes a slot within a lookahead of
    its span's end (twice the slowest of the last 16 grant round trips, at least 10 ms, at most
    one span), and it has messages in hand that the span's free slots will not take, the grant
    runs on the timeline's own thread (``run_ahead``; gone after a few idle seconds, or at
    ``close``), never under the lock. A sending thread waits for the database only when the
    span was used up before that: on a worker's first send, or when it has more senders than
    slots (its next slots come after the rest of the fleet's, later than the round trip).

    Like ``TokenBucket``, an idle sender may burst one second's worth (``max(1, rate)`` units):
    a span may start up to that far in the past, and slots passed up to that long ago are still
    taken. Older slots are gone, never caught up, whether of the span in use or of one fetched
    ahead and not used, so a dead or idle worker's unused span expires.
    """

    def __init__(
        self,
        sender: str,
        rate: float,
        grant: Grant,
        batch_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        demand: Callable[[], int] | None = None,
        run_ahead: Callable[[Job], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.sender = sender
        self._channel = sender.partition(":")[0]  # (a pool's sender is a number: not logged)
        self._demand = demand  # messages the worker has in hand (an upper bound is fine)
        self.rate = rate
        self._grant = grant
        self._batch = max(1.0, rate * batch_seconds)  # segments per grant
        # How far back an idle sender may start: max(1, rate) slots at once, the one due now
        # included, so no second sees more than rate + max(1, rate).
        self._burst = (max(1.0, rate) - 1.0) / rate
        self._clock = clock
        self._sleep = sleep
        self._offset = 0.0  # shared clock minus local clock
        self._start = 0.0  # the span we hold (shared clock): where it began,
        self._cursor = 0.0  # its next free slot,
        self._end = 0.0  # where it ends,
        self._skew = 0.0  # and half its grant's round trip (the uncertainty of its clock)
        self._next: tuple[float, float, float] | None = None  # fetched ahead: start, end, skew
        self._fetching = False  # a grant is under way (or queued to run ahead)
        self._fetched = 0  # grants finished (or failed): what waiting threads watch
        self._trips: deque[float] = deque(maxlen=16)  # the last grants' round trips
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._runner: _Runner | None = None
        if run_ahead is None:
            self._runner = run_ahead = _Runner(f"timeline-{self._channel}")
        self._run_ahead = run_ahead

    def reserve(self, cost: float = 1.0) -> float:
        """Take the next ``cost`` segments' slots; return how long to wait until the first."""
        job = None
        with self._cond:
            while True:
                now = self._clock() + self._offset
                start = self._take(now, cost)
                if start is not None:
                    job = self._ahead(now, cost)
                    break
                if not self._fetching:
                    # Used up with nothing on the way: this thread asks, the others wait for it.
                    self._fetch(self._wanted(now, cost, free=0), cost)
                    now = self._clock() + self._offset
                    start = self._begin(cost)
                    job = self._ahead(now, cost)
                    break
                seen = self._fetched
                while self._fetched == seen:
                    self._cond.wait()
        if job is not None:
            try:
                self._run_ahead(job)
            except BaseException:
                with self._cond:  # never started: whoever needs the span asks for it
                    self._fetching = False
                    self._fetched += 1
                    self._cond.notify_all()
                raise
        return max(0.0, start - now)

    def acquire(self, cost: float = 1.0, stop: threading.Event | None = None) -> bool:
        """Block until our slot comes. False if ``stop`` was set while waiting."""
        return _wait(self.reserve(cost), stop, self._sleep, self._channel)

    def close(self) -> None:
        """No more fetches ahead; a grant under way finishes, and the thread ends."""
        with self._cond:
            self._closed = True
        if self._runner is not None:
            self._runner.close()

    def lookahead(self) -> float:
        """How long before the span's end the next one is asked for (shared-clock seconds)."""
        with self._cond:
            return self._lookahead()

    def _lookahead(self) -> float:
        return min(self._batch / self.rate, max(_MIN_AHEAD, 2 * max(self._trips, default=0.0)))

    def _take(self, now: float, cost: float) -> float | None:
        """The first of ``cost`` free slots of the span we hold, else of the one fetched ahead;
        None if neither has them. A remainder too small for this message is lost."""
        while True:
            start = max(self._cursor, now - self._burst - self._skew)
            if (self._end - start) * self.rate >= cost - self._slack():
                self._cursor = start + cost / self.rate
                return start
            if self._next is None:
                return None
            self._start, self._end, self._skew = self._next
            self._cursor, self._next = self._start, None

    def _begin(self, cost: float) -> float:
        """The first of ``cost`` slots of the span this thread just fetched for its message:
        its own whatever the clock and rounding say. The span is the database's answer to this
        message, due from its start however late it is taken (it never starts before the
        statement's clock less the burst); a thread that found it short would ask again for
        another, and another: a sender of one message on an idle timeline finds it short by the
        microseconds since the grant returned, and one whose span's length rounds down at the
        epoch seconds of the database's clock finds every span short, forever."""
        assert self._next is not None  # (_fetch set it; the lock was held since)
        self._start, self._end, self._skew = self._next
        self._cursor, self._next = self._start + cost / self.rate, None
        return self._start

    def _slack(self) -> float:
        """How far short of a whole slot a span's free part may look from float rounding, in
        slots: the shared clock is the database's epoch seconds (about 1.8e9, where a double
        steps by 2.4e-7 s), so ``end - start`` differs from the span asked for by a few such
        steps; a clock near zero (the tests') leaves 1e-9."""
        return 1e-9 + 64 * math.ulp(self._end) * self.rate

    def _ahead(self, now: float, cost: float) -> Job | None:
        """The fetch ahead, if its time has come: the span's free slots run out within the
        lookahead, and the slots handed out run no further ahead of the clock than that (two
        messages' slots more: the one just taken, and the next sender's), so the shared clock is
        near the span's end. A worker holding slots further ahead has more senders than it
        needs to keep up: the sender that finds the span used up asks, and its slot, after
        those, is further away than the round trip. Only for messages in hand that the free
        slots will not take."""
        if self._fetching or self._next is not None or self._closed:
            return None
        ahead = self._lookahead() + 2 * cost / self.rate
        free = max(0.0, self._end - max(self._cursor, now - self._burst - self._skew))
        if free > ahead + 1e-9 or self._cursor - now > ahead + 1e-9:
            return None
        messages = self._wanted(now, cost, int(free * self.rate / cost + self._slack()))
        if messages < 1:
            return None
        self._fetching = True
        return lambda: self._fetch_ahead(messages, cost)

    def _wanted(self, now: float, cost: float, free: int) -> int:
        """Messages to ask slots for: a batch's worth, no more than those in hand that neither
        hold a slot still to come in this span nor fit in its ``free`` ones."""
        messages = int(self._batch // cost)
        if self._demand is not None:
            holding = max(0.0, self._cursor - max(now, self._start)) * self.rate / cost
            messages = min(messages, self._demand() - int(holding + self._slack()) - free)
        return messages

    def _fetch_ahead(self, messages: int, cost: float) -> None:
        with self._cond:
            if self._closed:
                self._fetching = False
                self._fetched += 1
                self._cond.notify_all()
                return
            try:
                self._fetch(messages, cost)
            except Exception:
                # Not raised here: a thread that needs the span asks again and sees the error.
                log.warning("fetching the next %s span ahead failed", self._channel, exc_info=True)

    def _fetch(self, messages: int, cost: float) -> None:
        """Ask for ``messages`` messages' span; called and returns holding the lock, which the
        round trip does not hold. Raises what the grant raised."""
        span = cost * max(1, messages) / self.rate
        self._fetching = True
        self._cond.release()
        try:
            before = self._clock()
            end, shared_now = self._grant(self.sender, span, self._burst)
            after = self._clock()
        finally:
            self._cond.acquire()
            self._fetching = False
            self._fetched += 1
            self._cond.notify_all()
        self._trips.append(after - before)
        self._offset = shared_now - (before + after) / 2
        self._next = (end - span, end, (after - before) / 2)


_MIN_AHEAD = 0.01  # seconds: the least lookahead, however fast the grants
_IDLE_SECONDS = 5.0  # a fetch-ahead thread with nothing to do this long ends


class _Runner:
    """One thread that runs the jobs handed to it in turn: started by the first, gone after
    ``_IDLE_SECONDS`` without one, or at ``close`` (the job under way finishes first)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._closed = False

    def __call__(self, job: Job) -> None:
        with self._cond:
            if self._thread is None:
                thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                thread.start()  # if it cannot, nothing is queued for a thread that never runs
                self._thread = thread
            self._jobs.append(job)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            thread = self._thread
            self._cond.notify()
        if thread is not None:
            thread.join()

    def _serve(self) -> None:
        while True:
            with self._cond:
                if not self._jobs and not self._closed:
                    self._cond.wait(_IDLE_SECONDS)
                if not self._jobs:
                    self._thread = None
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # a loop boundary: the next job still runs
                log.exception("a job of %s failed", self._name)


def _wait(
    seconds: float, stop: threading.Event | None, sleep: Callable[[float], None], channel: str
) -> bool:
    """Sleep ``seconds`` (woken by ``stop``), counted as the channel's rate-limit wait; False if
    ``stop`` was set."""
    if seconds <= 0:
        return True
    metrics.rate_limit_wait(channel, seconds)
    if stop is None:
        sleep(seconds)
        return True
    return not stop.wait(seconds)
