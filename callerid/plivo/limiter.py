"""Pacing for one Plivo account: never more than N requests in any period, yet close to N/period.

Two rules decide when the next request may go (`PacingWindow` in pacing.py, pure arithmetic on a
clock value):

* a sliding-window log of the last N requests: a grant needs the N-th previous one to be at least
  `period_s + margin_s` old, so no window of `period_s` ever holds more than N. A request counts
  from its grant, moved to the moment it reached the wire when the transport reports that
  (`sent()`): a request that first waited for a new connection reaches the server late. When its
  answer comes (`answered()`), it moves again by its round trip's excess over the fastest recent
  round trip: a request held up on the way (a stalled event loop, a busy server, the GIL of an
  in-process sandbox) may have been counted that much later. The margin absorbs what is left
  (clock differences); every 429 reported through `rate_limited()` widens it a little for the
  next N grants.
* a GCRA bucket at the same rate with a small burst (N/20): without it the first N grants would go
  out at once, sit in the HTTP connection pool and reach the server spread out, and the next N
  (granted exactly one period later) would land inside the same server window -> 429s.

`RateLimiter` hands grants out one at a time to the waiter at the head of a priority queue, so a
waiting completion (it has a deadline) goes before waiting initiations. Its state sits behind a
`threading.Lock` and waiters are woken with `call_soon_threadsafe`, so one limiter serves coroutines
on several event loops in several threads (Prefect runs sync tasks in worker threads, each with its
own loop). Known limit, kept on purpose: the head grants itself on its own loop, so a loop blocked
by sync code while it holds the head stalls the other loops' waiters for as long (never the rate
bound). Handing slots past a stuck head needs a watcher per loop and stall tracking (new lost-wakeup
risks on every request's path) or a timer thread (breaks the injected clock and sleep).
`limiter_for(auth_id)` returns the one limiter of an account in this process; the first
registration's limits hold (a later, different ask is logged and gets the same limiter).

Subaccounts: Plivo's 300/5 s is account-wide (the sandbox counts a subaccount in its parent's
window), but a subaccount's auth id does not name its parent, so `limiter_for` keys by the auth id
given: a process using main and subaccount credentials passes `limiter=limiter_for(main_id)`.

Across processes (issue 7) a `slot_source` can reserve slots in blocks, e.g. from a Prefect global
concurrency limit: the limiter awaits `slot_source(block)` before spending a block locally.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Protocol

from callerid.plivo.pacing import PacingWindow

SlotSource = Callable[[int], Awaitable[object]]


class TrackedSlots(Protocol):
    """A slot source that wants to hear when a request it granted counts later than its grant
    (`RateLimiter.sent` / `answered` moved it): the value its call returned, and by how much."""

    def moved(self, ticket: object, by_s: float) -> None: ...


logger = logging.getLogger("callerid.plivo")

_FETCH_POLL_S = 0.01


class Priority(IntEnum):
    NORMAL = 0
    HIGH = 1  # completions: an OTP expires 15 minutes after its initiation


class _Waiter:
    __slots__ = ("done", "future", "granted_at", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.granted_at = 0.0
        self.future: asyncio.Future[None] | None = None
        self.done = False  # granted or abandoned: skip it in the queue

    def wake(self) -> None:
        future = self.future
        if future is not None:
            self.loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class RateLimiter:
    """Grants requests for one account, at most `max_requests` in any `period_s` seconds."""

    def __init__(
        self,
        max_requests: int = 300,
        period_s: float = 5.0,
        *,
        margin_s: float = 0.1,
        burst: int | None = None,
        slot_source: SlotSource | None = None,
        slot_block: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._window = PacingWindow(max_requests, period_s, margin_s=margin_s, burst=burst)
        self._lock = threading.Lock()
        self._queue: list[tuple[int, int, _Waiter]] = []
        self._seq = itertools.count()
        self._clock = clock
        self._sleep = sleep
        self._slot_source = slot_source
        self._slot_block = max(1, slot_block)
        self._prepaid = 0
        # Tickets of a TrackedSlots source (one per slot, slot_block 1): by grant, then by stamp.
        self._tickets: list[object] = []
        self._ticket_of: dict[float, object] = {}
        self._fetching = False
        self.granted = 0
        self.rate_limited_total = 0  # 429s reported: the client retried them (flow logs say so)

    @property
    def max_requests(self) -> int:
        return self._window.max_requests

    @property
    def period_s(self) -> float:
        return self._window.period_s

    @property
    def burst(self) -> int:
        """Grants the GCRA bucket lets out back to back (the rest follow at `rate_per_s`)."""
        return self._window.burst

    @property
    def rate_per_s(self) -> float:
        return self._window.max_requests / self._window.span_s

    def __repr__(self) -> str:
        return f"RateLimiter({self.max_requests}/{self.period_s:g}s, granted={self.granted})"

    async def acquire(self, priority: Priority = Priority.NORMAL) -> float:
        """Wait until this request may be sent; higher priority waiters are served first.

        Returns the grant's time stamp: pass it to `sent()` when the request reaches the wire."""
        waiter = _Waiter(asyncio.get_running_loop())
        with self._lock:
            heapq.heappush(self._queue, (-int(priority), next(self._seq), waiter))
        try:
            while True:
                delay, fetch = self._try_grant(waiter)
                if delay is None and not fetch:
                    return waiter.granted_at
                if fetch:
                    await self._fetch_slots()
                elif delay is not None and delay > 0:
                    await self._sleep(delay)
                elif waiter.future is not None:
                    await waiter.future
        finally:
            if not waiter.done:  # cancelled or failed while queued: let the next one in
                with self._lock:
                    waiter.done = True
                    self._wake_head_locked()

    def _try_grant(self, waiter: _Waiter) -> tuple[float | None, bool]:
        """(None, False) = granted; (delay, False) = head, sleep; (0, False) = wait for a wake-up;
        (None, True) = head, must first reserve slots from the slot source."""
        with self._lock:
            self._drop_done_locked()
            if self._queue[0][2] is not waiter:
                waiter.future = waiter.loop.create_future()
                return 0.0, False
            now = self._clock()
            delay = self._window.delay(now)
            if delay > 0:
                return delay, False
            if self._slot_source is not None and self._prepaid <= 0:
                if self._fetching:
                    return _FETCH_POLL_S, False
                self._fetching = True
                return None, True
            heapq.heappop(self._queue)
            waiter.done = True
            waiter.granted_at = now
            self._window.record(now)
            if self._slot_source is not None:
                self._prepaid -= 1
                if self._tickets:
                    self._ticket_of[now] = self._tickets.pop(0)
            self.granted += 1
            self._wake_head_locked()
            return None, False

    def rate_limited(self) -> None:
        """Report a 429: the window widens a little and narrows again over the next N grants."""
        with self._lock:
            self.rate_limited_total += 1
            self._window.widen()

    def sent(self, granted_at: float, at: float | None = None) -> float:
        """The request granted at `granted_at` went on the wire at `at` (default: now).

        A grant is counted from its grant time; a request that waited for a new connection (a TLS
        handshake, a cold start) reaches the server later, and counting it from then keeps the
        N-th request after it from landing inside the server's window. Returns the request's stamp
        (pass it to `answered()`)."""
        with self._lock:
            stamp = self._window.move(granted_at, self._clock() if at is None else at)
            self._follow_locked(granted_at, stamp)
            return stamp

    def answered(self, stamp: float, at: float | None = None) -> float:
        """The request stamped `stamp` (by `sent()`, else its grant) got an answer at `at`
        (default: now): it counts later by its round trip's excess over the recent floor."""
        with self._lock:
            new = self._window.answered(stamp, self._clock() if at is None else at)
            ticket = self._ticket_of.pop(stamp, None)
            moved = getattr(self._slot_source, "moved", None)
            if ticket is not None and moved is not None and new > stamp:
                moved(ticket, new - stamp)
            self._drop_old_tickets_locked()
            return new

    def _follow_locked(self, old: float, new: float) -> None:
        """Sent: the ticket follows the request's stamp, and its move counts from the grant."""
        ticket = self._ticket_of.pop(old, None)
        if ticket is None:
            return
        moved = getattr(self._slot_source, "moved", None)
        if moved is not None and new > old:
            moved(ticket, new - old)
        self._ticket_of[new] = ticket

    def _drop_old_tickets_locked(self) -> None:
        if len(self._ticket_of) > 4 * self.max_requests:  # answers that never came
            for key in sorted(self._ticket_of)[: len(self._ticket_of) // 2]:
                del self._ticket_of[key]

    async def _fetch_slots(self) -> None:
        assert self._slot_source is not None
        try:
            ticket = await self._slot_source(self._slot_block)
            with self._lock:
                self._prepaid = max(self._prepaid, 0) + self._slot_block
                if ticket is not None and hasattr(self._slot_source, "moved"):
                    self._tickets.append(ticket)
        finally:
            with self._lock:
                self._fetching = False

    def _drop_done_locked(self) -> None:
        while self._queue and self._queue[0][2].done:
            heapq.heappop(self._queue)

    def _wake_head_locked(self) -> None:
        while True:
            self._drop_done_locked()
            if not self._queue:
                return
            head = self._queue[0][2]
            try:
                head.wake()
                return
            except RuntimeError:  # its event loop is closed: it will never run again
                head.done = True


_registry: dict[str, RateLimiter] = {}
_registry_lock = threading.Lock()


def install_limiter(auth_id: str, limiter: RateLimiter) -> RateLimiter:
    """Register `limiter` as the account's process-wide limiter unless one is already in force.

    Returns the limiter in force: `limiter` itself, or the earlier one (first registration wins,
    as in `limiter_for`); a caller can tell which by identity.
    """
    with _registry_lock:
        return _registry.setdefault(auth_id, limiter)


def limiter_for(
    auth_id: str, max_requests: int | None = None, period_s: float | None = None
) -> RateLimiter:
    """The process-wide limiter of an account, created on first use (default 300 per 5 s).

    The first registration wins, in any order: a later ask with other limits logs a warning and
    gets the limiter in force (reconfiguring a live one would break its guarantee for grants
    already made; a second bucket would double the rate). Callers reading `Settings` agree by
    construction; code that needs other limits passes its own `RateLimiter`.
    """
    with _registry_lock:
        limiter = _registry.get(auth_id)
        if limiter is None:
            limiter = RateLimiter(
                300 if max_requests is None else max_requests,
                5.0 if period_s is None else period_s,
            )
            _registry[auth_id] = limiter
            return limiter
    asked = (
        limiter.max_requests if max_requests is None else max_requests,
        limiter.period_s if period_s is None else period_s,
    )
    if asked != (limiter.max_requests, limiter.period_s):
        logger.warning(
            "account %s already has a limiter of %d/%gs in this process; keeping it, not the "
            "%d/%gs asked for (set CALLERID_RATE_LIMIT_REQUESTS/_PERIOD_S before the first "
            "client, or pass a RateLimiter)",
            *(auth_id, limiter.max_requests, limiter.period_s, *asked),
        )
    return limiter
