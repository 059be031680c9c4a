"""One account's request budget shared through a PostgreSQL ledger, for processes that run
without a Prefect server (under one, the global concurrency limit shares it: tasks/account.py).

The budget is the API's own rule, kept in the database: at most `max_requests` grants in any
`period_s + margin_s` seconds, per account, over every process that shares the ledger. Each grant
is a row (`rate_grants`: account, time on the database's clock, so processes need not agree on
theirs); a process takes one by locking the account (a transaction-scoped advisory lock), reading
the `max_requests`-th latest grant, and inserting its own if that one is old enough. Otherwise it
learns when it will be, and sleeps until then.

A grant row is stamped when it is taken, and the request reaches the server a little later; the
margin (default 0.5 s, five times the limiter's own 0.1 s: a busy machine) covers that gap; a
process descheduled for longer than that between the grant and the send may meet a 429 (the
client retries it). The limiter tells the budget when a request reached the server late (its
round trip's excess over the fastest recent one, `RateLimiter.answered`), and the grant's row
moves by as much, as the limiter's own window does. One grant per request, not blocks: a block
taken now and spent later would be counted early, and a process's unspent block would add to
everybody else's rate.

`LedgerBudget` is a `callerid.plivo.SlotSource`: `RateLimiter(..., slot_source=budget,
slot_block=1)` asks it before each local grant; the local window still paces the process.
"""

from __future__ import annotations

import asyncio
import threading
from typing import cast

from sqlalchemy import Engine, Table, delete, insert, text

from callerid.ledger.models import RateGrant

DEFAULT_MARGIN_S = 0.5
_grants = cast(Table, RateGrant.__table__)
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")
_NOW_AND_NTH = text(
    "SELECT extract(epoch FROM clock_timestamp())::float8, "
    "(SELECT at FROM rate_grants WHERE account = :account ORDER BY at DESC OFFSET :k LIMIT 1)"
)
_MOVE = text("UPDATE rate_grants SET at = at + :by WHERE id = :id")
MOVE_AT_LEAST_S = 0.05
_PRUNE_EVERY = 64  # grants; old rows are deleted now and then, in the granting transaction


class LedgerBudget:
    """At most `max_requests` grants per `period_s + margin_s` for `account`, across processes."""

    def __init__(
        self,
        engine: Engine,
        account: str,
        max_requests: int,
        period_s: float,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("a budget shared through the ledger needs PostgreSQL")
        if max_requests < 1 or period_s <= 0 or margin_s < 0:
            raise ValueError("need max_requests >= 1, period_s > 0 and margin_s >= 0")
        self.engine = engine
        self.account = account
        self.max_requests = max_requests
        self.span_s = period_s + margin_s
        self._taken = 0
        self._lock = threading.Lock()
        self._moves: list[tuple[int, float]] = []

    def __repr__(self) -> str:
        return f"LedgerBudget({self.account!r}, {self.max_requests}/{self.span_s:g}s)"

    def try_take(self) -> float:
        """Take one grant (returns 0.0), or return the seconds until one may be free."""
        return self._take()[0]

    def _take(self) -> tuple[float, int | None]:
        """(0.0, the grant's row id), or (seconds to wait, None)."""
        with self._lock:
            moves, self._moves = self._moves, []
        with self.engine.begin() as conn:
            conn.execute(_LOCK, {"key": f"callerid-rate:{self.account}"})
            if moves:
                conn.execute(_MOVE, [{"id": i, "by": by} for i, by in moves])
            now, nth = conn.execute(
                _NOW_AND_NTH, {"account": self.account, "k": self.max_requests - 1}
            ).one()
            if nth is not None and float(nth) > float(now) - self.span_s:
                return float(nth) + self.span_s - float(now), None
            row_id = conn.execute(
                insert(_grants).values(account=self.account, at=now).returning(_grants.c.id)
            ).scalar_one()
            self._taken += 1
            if self._taken % _PRUNE_EVERY == 0:
                old = float(now) - 2 * self.span_s
                conn.execute(
                    delete(_grants).where(_grants.c.account == self.account, _grants.c.at < old)
                )
        return 0.0, int(row_id)

    async def __call__(self, n: int) -> int | None:
        """Take `n` grants, waiting for each as long as the shared window says; returns the last
        one's ticket (for `moved`)."""
        ticket = None
        for _ in range(n):
            while True:
                wait, ticket = await asyncio.to_thread(self._take)
                if ticket is not None:
                    break
                await asyncio.sleep(wait)
        return ticket

    def moved(self, ticket: object, by_s: float) -> None:
        """The request of grant `ticket` counts `by_s` later than its grant (the limiter saw it
        reach the server late): its row moves too, with the next grant this process takes, so
        the other processes count it as late as the server may have. Small moves are left to
        the margin."""
        if isinstance(ticket, int) and by_s >= MOVE_AT_LEAST_S:
            with self._lock:
                self._moves.append((ticket, by_s))
