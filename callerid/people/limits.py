"""The code page's rate limit per link, counted in the ledger: every process that serves the page
(the run's in-process receiver, `callerid inbox serve`, several of them behind a balancer) shares
one count per link, and a restart forgets nothing.

At most `per_minute` POSTs per link in any 60 s. Each allowed POST is a row of `rate_grants` (the
table of the shared Plivo budget, `callerid.ledger.rate_budget`) under the key `codes:<link id>`,
which no Plivo account id can take (they are `MA…`/`SA…`). The check and the row are one
transaction that holds the link's turn: `BEGIN IMMEDIATE` on SQLite (writers queue on the busy
timeout), a transaction-scoped advisory lock on PostgreSQL, so two processes never both take the
last slot. A link's rows older than the window are deleted as it goes, and every
`PRUNE_EVERY` POSTs the last rows of links nobody used for an hour.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from callerid.clock import Clock
from callerid.inbox.db import SessionScope
from callerid.ledger.models import RateGrant
from callerid.ledger.snapshot import begin_snapshot

WINDOW_S = 60.0
KEY_PREFIX = "codes:"
PRUNE_EVERY = 100  # allowed POSTs of this process
PRUNE_AFTER_S = 3600.0
_PG_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def rate_key(link: str) -> str:
    """The `rate_grants.account` of a link id (32 hex characters; the column holds 64)."""
    return KEY_PREFIX + link


def _take_turn(session: Session, key: str) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_PG_LOCK, {"key": key})
    else:
        begin_snapshot(session, write=True)


class LinkRateLimit:
    """At most `per_minute` POSTs per link in any `WINDOW_S`, across processes (the ledger's)."""

    def __init__(self, scope: SessionScope, per_minute: int, clock: Clock) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.scope = scope
        self.per_minute = per_minute
        self.clock = clock
        self._calls = 0

    def allow(self, link: str) -> bool:
        """Count one POST on `link` if the window has room (True), else nothing (False)."""
        key = rate_key(link)
        now = self.clock.now().timestamp()
        since = now - WINDOW_S
        with self.scope() as session:
            _take_turn(session, key)
            session.execute(
                delete(RateGrant).where(RateGrant.account == key, RateGrant.at <= since)
            )
            recent = session.execute(
                select(func.count())
                .select_from(RateGrant)
                .where(RateGrant.account == key, RateGrant.at > since)
            ).scalar_one()
            if recent >= self.per_minute:
                return False
            session.add(RateGrant(account=key, at=now))
            self._calls += 1
            if self._calls % PRUNE_EVERY == 0:  # links nobody uses any more: their last rows
                session.execute(
                    delete(RateGrant).where(
                        RateGrant.account.startswith(KEY_PREFIX, autoescape=True),
                        RateGrant.at <= now - PRUNE_AFTER_S,
                    )
                )
        return True
