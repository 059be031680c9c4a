"""The reads the loop and the people lane repeat every round do the same work whatever the run's
size (issue 14): measured as SQLite's own count of virtual-machine steps, which grows with every
row a statement visits (a walk of the run's numbers shows at once; the statement count does not:
one COUNT over an index of the account is one statement either way)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, text

from callerid.clock import ManualClock
from callerid.ledger import Ledger, NumberRecord, open_ledger
from callerid.ledger.recovery import interrupted
from callerid.people import waves
from callerid.pipeline import ledger_reads
from tests.ledger_support import ACCOUNT, T0

SMALL, LARGE = 200, 20_000
LIVE = 5  # numbers still waiting for their code, in both runs


def _ledger(folder: Path, n: int) -> Ledger:
    """A run of `n` numbers that only waits: all but `LIVE` verified, those `initiated`."""
    ledger = open_ledger(f"sqlite:///{folder / f'ledger-{n}.sqlite3'}")
    rows = [NumberRecord(f"+1{2_000_000_000 + i}") for i in range(n)]
    with ledger.unit_of_work() as uow:
        uow.runs.start_run(f"run-{n}", ACCOUNT, now=T0)
        uow.numbers.upsert_many(ACCOUNT, rows, f"run-{n}", T0)
        uow.commit()
    window = {"at": T0, "ends": T0 + timedelta(minutes=15), "live": LIVE}
    with ledger.engine.begin() as db:
        db.execute(text("UPDATE numbers SET owner = 'owner' || (id % 7) || '@example.com'"))
        db.execute(
            text(
                "UPDATE numbers SET status = CASE WHEN id <= :live THEN 'initiated' "
                "ELSE 'verified' END, verification_uuid = 'u' || id, initiated_at = :at, "
                "expires_at = :ends"
            ),
            window,
        )
    return ledger


def _steps(ledger: Ledger, read: Callable[[], object]) -> int:
    """SQLite VM steps (in hundreds) that `read` costs, after one call to settle the run's count
    rows (the bulk UPDATE left one per number; the first look folds them)."""
    read()
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    def watch(conn: Any, *args: Any) -> None:
        conn.connection.dbapi_connection.set_progress_handler(tick, 100)

    event.listen(ledger.engine, "before_cursor_execute", watch)
    try:
        read()
    finally:
        event.remove(ledger.engine, "before_cursor_execute", watch)
    return steps[0]


def _reads(ledger: Ledger, n: int) -> dict[str, Callable[[], object]]:
    run = f"run-{n}"
    now = T0 + timedelta(minutes=5)
    pipeline: Any = SimpleNamespace(
        account=ACCOUNT, ledger=ledger, run_id=run, e164s=[], clock=ManualClock(now)
    )

    def look() -> object:
        pipeline.shared_look = None
        return ledger_reads.work(pipeline, now - timedelta(seconds=30))

    def people() -> object:
        with ledger.unit_of_work() as uow:
            members = waves.RunMembers(run)
            found = waves.needing_person(uow.session, ACCOUNT, members, now, timedelta(0))
            assert len(found) == LIVE
            return waves.initiations_pending(uow.session, ACCOUNT, members)

    def leftovers() -> object:
        with ledger.unit_of_work() as uow:
            return interrupted(uow, ACCOUNT, now)

    def expire() -> object:
        with ledger.unit_of_work() as uow:
            return uow.numbers.expire_due(ACCOUNT, now, run, 2)  # none due; rolled back

    return {
        "work": look,
        "waiting_for_person": lambda: ledger_reads.waiting_for_person(pipeline, now, timedelta(0)),
        "people lane": people,
        "interrupted": leftovers,
        "expire_due": expire,
    }


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Ledger]]:
    folder = tmp_path_factory.mktemp("flat")
    opened = {n: _ledger(folder, n) for n in (SMALL, LARGE)}
    yield opened
    for ledger in opened.values():
        ledger.close()


@pytest.mark.parametrize(
    "name", ["work", "waiting_for_person", "people lane", "interrupted", "expire_due"]
)
def test_a_round_costs_the_same_at_100_and_at_100_times_more_numbers(
    ledgers: dict[int, Ledger], name: str
) -> None:
    small = _steps(ledgers[SMALL], _reads(ledgers[SMALL], SMALL)[name])
    large = _steps(ledgers[LARGE], _reads(ledgers[LARGE], LARGE)[name])
    # an index one level deeper costs a few steps more; a walk of the run costs 100 times more
    assert large <= 2 * small + 5, (name, small, large)


def test_the_look_is_right_too(ledgers: dict[int, Ledger]) -> None:
    for n, ledger in ledgers.items():
        work: Any = _reads(ledger, n)["work"]()
        assert (work.queued, work.live, work.due, work.pending) == (0, LIVE, 0, LIVE)
