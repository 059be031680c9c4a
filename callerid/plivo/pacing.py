"""The limiter's timing rules on plain float seconds (no locks, no event loop: `RateLimiter` wraps
them).

A request's slot in the sliding window is a time stamp that must not be earlier than the moment the
server counted the request, or the N-th request after it lands inside the server's window (429).
Three stamps are known on the client: the grant, the moment the request reached the wire (`move`
from the grant), and the moment its answer came back (`answered`). The server counted it somewhere
between the last two. Counting every request from its answer is safe but costs a round trip per
slot cycle (5 % of the rate at 250 ms). `RoundTripFloor` keeps the fastest round trip lately seen:
the part of a round trip that every request pays (distance, the server's own work) is not a delay
before arrival that varies, while the *excess* over that floor may be: a stall in the client's
event loop, a busy server (or, for the in-process sandbox, the GIL) that held the request before
counting it. A slot is moved later by that excess, so a request that arrived late is counted late.
"""

from __future__ import annotations

import bisect
from collections import deque


class RoundTripFloor:
    """The smallest of the last `size` round trips (a sliding-window minimum, O(1) amortised)."""

    def __init__(self, size: int = 256) -> None:
        self.size = max(1, size)
        self._seen = 0
        self._mins: deque[tuple[int, float]] = deque()  # (sample index, rtt), rtt ascending

    def add(self, rtt_s: float) -> float:
        """Record one round trip; return the floor including it."""
        while self._mins and self._mins[-1][1] >= rtt_s:
            self._mins.pop()
        self._mins.append((self._seen, rtt_s))
        self._seen += 1
        while self._mins[0][0] <= self._seen - 1 - self.size:
            self._mins.popleft()
        return self._mins[0][1]

    @property
    def value(self) -> float | None:
        return self._mins[0][1] if self._mins else None


class PacingWindow:
    """The timing rules, on plain float seconds; not thread-safe (RateLimiter locks around it).

    * a sliding-window log of the last N request times: a grant needs the N-th previous one to be
      at least `period_s + margin_s` old;
    * a GCRA bucket at the same rate with a small burst (N/20), so the first N grants do not all go
      out at once and the next N (one period later) do not land in the same server window.
    """

    def __init__(
        self, max_requests: int, period_s: float, *, margin_s: float = 0.1, burst: int | None = None
    ) -> None:
        if max_requests < 1 or period_s <= 0 or margin_s < 0:
            raise ValueError("need max_requests >= 1, period_s > 0 and margin_s >= 0")
        self.max_requests = max_requests
        self.period_s = period_s
        self.margin_s = margin_s
        self.burst = max(1, min(max_requests, burst or max_requests // 20))
        # Widened by each 429 (our margin was too thin for this server/network) and narrowed
        # again over the next N grants, never beyond 5% of the period.
        self.extra_s = 0.0
        self.max_extra_s = 0.05 * period_s
        self.widen_step_s = 0.02
        self.floor = RoundTripFloor()
        self._times: list[float] = []  # the latest N request times, ascending
        self._tat = float("-inf")  # GCRA "theoretical arrival time"

    @property
    def span_s(self) -> float:
        return self.period_s + self.margin_s + self.extra_s

    @property
    def interval_s(self) -> float:
        return self.span_s / self.max_requests

    def widen(self) -> None:
        """The server answered 429: keep requests further apart for a while."""
        self.extra_s = min(self.max_extra_s, self.extra_s + self.widen_step_s)

    def delay(self, now: float) -> float:
        """Seconds from `now` until the next grant is allowed (0 = now)."""
        wait = self._tat - (self.burst - 1) * self.interval_s - now
        if len(self._times) == self.max_requests:
            wait = max(wait, self._times[0] + self.span_s - now)
        return max(0.0, wait)

    def record(self, now: float) -> None:
        self._insert(now)
        self._tat = max(self._tat, now) + self.interval_s
        if self.extra_s:
            self.extra_s = max(0.0, self.extra_s - self.widen_step_s / self.max_requests)

    def move(self, old: float, new: float) -> float:
        """A request counted at `old` is to count from `new` if that is later; returns its stamp."""
        if new <= old:
            return old
        i = bisect.bisect_left(self._times, old)
        if i < len(self._times) and self._times[i] == old:
            del self._times[i]
        self._insert(new)
        return new

    def answered(self, on_wire: float, now: float) -> float:
        """The request stamped `on_wire` got its answer at `now`: count it later by the round trip's
        excess over the floor (see the module docstring). Returns its new stamp."""
        rtt = max(0.0, now - on_wire)
        floor = self.floor.add(rtt)
        return self.move(on_wire, on_wire + (rtt - floor))

    def _insert(self, value: float) -> None:
        bisect.insort(self._times, value)
        if len(self._times) > self.max_requests:
            del self._times[0]
