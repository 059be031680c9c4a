"""The sandbox's per-account request limit: at most N admitted requests in any rolling period.

Decision (plivo-api.md §0 leaves it open): only *admitted* requests enter the window; a request
answered 429 does not. So "no 429 ever" means exactly "the client never put more than N requests
into any period", and a client that backs off after a 429 is not punished further for the attempt.
The backend keys the window by the main account: a subaccount's requests count in its parent's
window, as Plivo documents its 300 per 5 s limit account-wide (see backend.py).
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta


class RollingWindowLimiter:
    def __init__(self, limit: int, period_s: float) -> None:
        if limit < 1 or period_s <= 0:
            raise ValueError("rate limit needs limit >= 1 and period_s > 0")
        self.limit = limit
        self.period = timedelta(seconds=period_s)
        self._admitted: dict[str, deque[datetime]] = {}

    def admit(self, key: str, now: datetime) -> bool:
        """Record and allow the request, or refuse it (not recorded) when the window is full."""
        window = self._admitted.setdefault(key, deque())
        while window and window[0] <= now - self.period:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(now)
        return True

    def reset(self) -> None:
        self._admitted.clear()
