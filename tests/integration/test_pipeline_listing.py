"""The confirming list at a run's end, on a real ledger: what it changes, what it reports, and
that it loads only the rows it may change (at 100,000 numbers every row in one session was the
run's memory peak)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event

from callerid.clock import ManualClock
from callerid.ledger import Ledger, NumberStatus, open_ledger
from callerid.ledger.models import Number
from callerid.pipeline import ledger_ops, ledger_reads
from tests.ledger_support import ACCOUNT, RUN, T0, drive, e164s, register, statuses

S = NumberStatus


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def _pipeline(ledger: Ledger, numbers: list[str]) -> Any:
    return SimpleNamespace(
        account=ACCOUNT,
        ledger=ledger,
        run_id=RUN,
        e164s=numbers,
        clock=ManualClock(T0 + timedelta(minutes=1)),
    )


def test_the_confirming_list_settles_what_it_may_and_loads_nothing_else(ledger: Ledger) -> None:
    numbers = e164s(30)
    register(ledger, 30)
    for e164 in numbers[:20]:  # verified by this run
        drive(ledger, e164, S.INITIATING, S.INITIATED, S.COMPLETING, S.VERIFIED)
    drive(ledger, numbers[20], S.INITIATING, S.INITIATED)  # its code went through unseen
    drive(ledger, numbers[21], S.INITIATING, S.INITIATED, S.EXPIRED, S.FAILED)
    # 22..29 stay queued; 25 is listed by the account already
    listed = set(numbers[:19]) | {numbers[20], numbers[21], numbers[25]}
    pipeline = _pipeline(ledger, numbers)

    loaded: list[int] = []

    def count(session: Any, instance: Any) -> None:
        if isinstance(instance, Number):
            loaded.append(instance.id)

    event.listen(ledger.sessions, "loaded_as_persistent", count)
    try:
        changed = ledger_ops.mark_listed(pipeline, listed)
    finally:
        event.remove(ledger.sessions, "loaded_as_persistent", count)

    assert changed == {"verified": 2, "already_verified": 1}
    assert len(loaded) == 3  # the 19 listed and verified ones were left in the database
    now = statuses(ledger)
    assert (now[numbers[20]], now[numbers[21]], now[numbers[25]]) == (
        "verified",
        "verified",
        "already_verified",
    )
    assert ledger_reads.verified_but_unlisted(pipeline, listed) == [numbers[19]]
