"""The account's limiter when several processes share a PostgreSQL ledger and no Prefect server.

`ledger_limiter` gives a limiter that also takes each grant from the budget kept in the ledger
(`callerid.ledger.rate_budget`), so any number of `callerid run` processes of one account stay
under the API's limit together. None on SQLite (one machine, and in practice one run at a time).
Under a Prefect server the flow paces with the GCL-fed limiter instead (tasks/account.py), and
this is not asked.

One limiter per (account, database, limits) in a process, so that every run of the process
shares it; it is not installed as the process-wide `limiter_for` one, so clients built without a
limiter (e.g. `callerid reconcile`) keep their plain in-process pacing.
"""

from __future__ import annotations

import threading

from callerid.ledger import Ledger, open_ledger, resolve_url
from callerid.ledger.rate_budget import LedgerBudget
from callerid.plivo import RateLimiter

_limiters: dict[tuple[str, str, int, float], RateLimiter] = {}
_ledgers: list[Ledger] = []  # kept open for the process's lifetime, like the limiters
_lock = threading.Lock()


def ledger_limiter(
    auth_id: str, max_requests: int, period_s: float, database_url: str
) -> RateLimiter | None:
    """The account's limiter sharing its budget through the ledger at `database_url` when that is
    PostgreSQL; None otherwise."""
    url = resolve_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    key = (auth_id, url.render_as_string(hide_password=False), max_requests, period_s)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            ledger = open_ledger(database_url)
            _ledgers.append(ledger)
            budget = LedgerBudget(ledger.engine, auth_id, max_requests, period_s)
            limiter = RateLimiter(max_requests, period_s, slot_source=budget, slot_block=1)
            _limiters[key] = limiter
        return limiter
