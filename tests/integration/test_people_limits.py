"""The code page's per-link rate limit, kept in the ledger (SQLite file and PostgreSQL): many
at once never get past it, its window slides, and the rows of links nobody uses are pruned."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callerid.clock import ManualClock
from callerid.inbox import session_scope
from callerid.ledger import Ledger, open_ledger
from callerid.ledger.models import RateGrant
from callerid.people.limits import PRUNE_EVERY, LinkRateLimit, rate_key
from tests.ledger_support import T0

LINK, OTHER = "a" * 32, "b" * 32


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def _rows(ledger: Ledger, link: str) -> int:
    with ledger.unit_of_work() as uow:
        query = select(func.count()).select_from(RateGrant)
        return int(uow.session.execute(query.where(RateGrant.account == rate_key(link))).scalar())


def test_many_at_once_on_one_link_get_exactly_the_limit(ledger: Ledger) -> None:
    """Forty POSTs at one moment from eight threads (each its own connection, as processes
    would be): ten pass, whoever they are."""
    clock = ManualClock(T0)
    limits = [LinkRateLimit(session_scope(ledger), 10, clock) for _ in range(8)]
    start = threading.Barrier(8)

    def hammer(limit: LinkRateLimit) -> int:
        start.wait()
        return sum(limit.allow(LINK) for _ in range(5))

    with ThreadPoolExecutor(8) as pool:
        allowed = sum(pool.map(hammer, limits))
    assert allowed == 10 and _rows(ledger, LINK) == 10
    assert limits[0].allow(OTHER)  # another link has its own minute


def test_the_window_slides_and_old_links_are_pruned(ledger: Ledger) -> None:
    clock = ManualClock(T0)
    limit = LinkRateLimit(session_scope(ledger), 10, clock)
    assert all(limit.allow(OTHER) for _ in range(10))
    assert not limit.allow(OTHER)
    clock.advance(60)
    assert limit.allow(OTHER)  # a minute later: room again, the old rows gone
    assert _rows(ledger, OTHER) == 1
    clock.advance(2 * 3600)
    for _ in range(PRUNE_EVERY):
        assert limit.allow(LINK)
        clock.advance(timedelta(seconds=7).total_seconds())
    assert _rows(ledger, OTHER) == 0  # nobody used it for two hours
    assert _rows(ledger, LINK) == 9  # its last minute (7 s apart)
