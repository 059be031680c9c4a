"""Per-run status counts (issue 14): kept by the database across every kind of transition, and
read by the loop with a number of queries (and rows) that does not grow with the run."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from callerid.ledger import Ledger, NumberStatus, open_ledger, states
from callerid.ledger.models import Number, RunCount, RunNumber
from callerid.ledger.run_counts import COMPACT_ABOVE
from callerid.pipeline import ledger_reads
from tests.ledger_support import ACCOUNT, OTHER, T0, records

S = NumberStatus
RUN_A, RUN_B = "run-a", "run-b"


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def start(ledger: Ledger, run_id: str, n: int, start_at: int = 0, account: str = ACCOUNT) -> None:
    with ledger.unit_of_work() as uow:
        uow.runs.start_run(run_id, account, now=T0)
        uow.numbers.upsert_many(account, records(n, start_at), run_id, T0)
        uow.commit()


def truth(ledger: Ledger, run_id: str) -> dict[str, int]:
    """The run's counts the slow way: every member's status."""
    with ledger.unit_of_work() as uow:
        query = (
            select(Number.status, func.count())
            .join(RunNumber, RunNumber.number_id == Number.id)
            .where(RunNumber.run_id == run_id)
            .group_by(Number.status)
        )
        return {status: int(n) for status, n in uow.session.execute(query)}


def kept(ledger: Ledger, run_id: str) -> dict[str, int]:
    with ledger.unit_of_work() as uow:
        counts = uow.runs.status_counts(run_id)
        uow.commit()
        return counts


def count_rows(ledger: Ledger, run_id: str) -> int:
    with ledger.unit_of_work() as uow:
        query = select(func.count()).select_from(RunCount).where(RunCount.run_id == run_id)
        return int(uow.session.execute(query).scalar_one())


def test_counts_follow_claims_transitions_expiry_and_a_second_run(ledger: Ledger) -> None:
    start(ledger, RUN_A, 30)
    start(ledger, RUN_B, 20, start_at=20)  # ten numbers shared with run A
    start(ledger, "other-account", 5, account=OTHER)
    assert kept(ledger, RUN_A) == {"queued": 30} == truth(ledger, RUN_A)
    assert kept(ledger, RUN_B) == {"queued": 20}
    now = T0 + timedelta(seconds=1)
    with ledger.unit_of_work() as uow:  # bulk claim (Core UPDATE .. RETURNING)
        claimed = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 25, now, RUN_A, "initiate")
        for row in claimed[:20]:  # ORM transitions
            uow.numbers.transition(
                row,
                S.INITIATED,
                reason="sent",
                run_id=RUN_A,
                now=now,
                verification_uuid=f"u-{row.e164}",
                initiated_at=now,
                expires_at=now + timedelta(minutes=15),
            )
        for row in claimed[20:]:
            uow.numbers.transition(row, S.FAILED, reason="rejected", run_id=RUN_A, now=now)
        uow.commit()
    assert (
        kept(ledger, RUN_A) == truth(ledger, RUN_A) == {"queued": 5, "initiated": 20, "failed": 5}
    )
    assert kept(ledger, RUN_B) == truth(ledger, RUN_B)
    with ledger.unit_of_work() as uow:
        rows = uow.numbers.by_status(ACCOUNT, S.INITIATED)
        for row in rows[:8]:
            uow.numbers.transition(row, S.COMPLETING, reason="code", run_id=RUN_A, now=now)
            uow.numbers.transition(row, S.VERIFIED, reason="ok", run_id=RUN_A, now=now)
        uow.commit()
    later = now + timedelta(minutes=16)
    with ledger.unit_of_work() as uow:  # initiated -> expired -> queued / failed
        uow.numbers.expire_due(ACCOUNT, later, RUN_A, max_attempts=2)
        uow.commit()
    with ledger.unit_of_work() as uow:  # a status written by hand is counted too
        uow.session.execute(
            text("UPDATE numbers SET status = 'failed' WHERE e164 = '+14155550029'")
        )
        uow.commit()
    for run in (RUN_A, RUN_B):
        assert kept(ledger, run) == truth(ledger, run)
    assert sum(kept(ledger, RUN_A).values()) == 30
    assert kept(ledger, "other-account") == {"queued": 5}


def test_random_walks_keep_the_counts_and_the_rows_stay_few(ledger: Ledger) -> None:
    start(ledger, RUN_A, 60)
    start(ledger, RUN_B, 30, start_at=45)
    rng = random.Random(14)
    now = T0
    for _round in range(25):
        now += timedelta(seconds=1)
        with ledger.unit_of_work() as uow:
            rows = uow.numbers.by_status(ACCOUNT)
            for row in rng.sample(rows, 12):
                moves = sorted(
                    t for t in S if t.value != row.status and states.is_allowed(row.status, t)
                )
                if moves:
                    target = rng.choice(moves)
                    uow.numbers.transition(row, target, reason="walk", run_id=RUN_A, now=now)
            uow.commit()
        assert kept(ledger, RUN_A) == truth(ledger, RUN_A)
        assert kept(ledger, RUN_B) == truth(ledger, RUN_B)
        # folded on read: what a read sums stays bounded, whatever the number of transitions
        assert count_rows(ledger, RUN_A) <= COMPACT_ABOVE + 2 * 12 + len(S)


def test_a_finished_run_keeps_its_counts_and_a_restart_recounts(ledger: Ledger) -> None:
    start(ledger, RUN_A, 10)
    with ledger.unit_of_work() as uow:
        for row in uow.numbers.by_status(ACCOUNT)[:4]:
            uow.numbers.transition(row, S.ALREADY_VERIFIED, reason="listed", run_id=RUN_A, now=T0)
        uow.runs.finish_run(RUN_A, counts={}, now=T0)
        uow.commit()
    finished = {"queued": 6, "already_verified": 4}
    assert kept(ledger, RUN_A) == finished
    start(ledger, RUN_B, 10)  # a later run moves the same numbers: run A's record stays
    with ledger.unit_of_work() as uow:
        uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 6, T0, RUN_B, "initiate")
        uow.commit()
    assert kept(ledger, RUN_A) == finished
    assert kept(ledger, RUN_B) == {"initiating": 6, "already_verified": 4}
    start(ledger, RUN_A, 10)  # the same run id again (a retried flow run): counted afresh
    assert kept(ledger, RUN_A) == truth(ledger, RUN_A) == kept(ledger, RUN_B)


def _statements(ledger: Ledger, n: int, account: str) -> int:
    """Statements one look at the ledger sends, for a run of `n` numbers."""
    start(ledger, account, n, account=account)  # the run id is the account's name
    with ledger.unit_of_work() as uow:  # some traffic, so that the counts are not pristine
        uow.numbers.claim(account, [S.QUEUED], S.INITIATING, 50, T0, account, "initiate")
        uow.commit()
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    pipeline = SimpleNamespace(
        ledger=ledger, account=account, run_id=account, e164s=[r.e164 for r in records(n)]
    )
    event.listen(ledger.engine, "after_cursor_execute", count)
    try:
        work = ledger_reads.work(pipeline, T0)  # type: ignore[arg-type]
    finally:
        event.remove(ledger.engine, "after_cursor_execute", count)
    assert (work.pending, work.queued, work.live) == (n, n - 50, 50)
    return len(seen)


def test_the_loops_look_at_the_ledger_does_not_grow_with_the_run(ledger: Ledger) -> None:
    small = _statements(ledger, 100, "MASMALL0000000000001")
    large = _statements(ledger, 5000, "MALARGE0000000000001")
    assert large == small <= 6


def test_migration_0003_counts_the_numbers_of_runs_in_progress(db_url: str) -> None:
    from callerid.ledger.migrate import downgrade, upgrade

    with open_ledger(db_url) as ledger:
        downgrade(ledger.engine, "0002")
        with ledger.engine.begin() as conn:
            for run_id, finished in (("going", None), ("done", T0)):
                conn.execute(
                    text(
                        "INSERT INTO runs (id, account, parameters, counts, started_at, "
                        "finished_at) VALUES (:id, :a, '{}', '{}', :t, :f)"
                    ),
                    {"id": run_id, "a": ACCOUNT, "t": T0, "f": finished},
                )
            rows = [("going", "queued"), ("going", "verified"), ("going", "queued")]
            for i, (run_id, status) in enumerate([*rows, ("done", "failed")]):
                conn.execute(
                    text(
                        "INSERT INTO numbers (account, e164, channel, status, attempts, wrong_otps,"
                        " last_run_id, created_at, updated_at, version) VALUES (:a, :e, 'sms', :s,"
                        " 0, 0, :r, :t, :t, 1)"
                    ),
                    {"a": ACCOUNT, "e": f"+1415555000{i}", "s": status, "r": run_id, "t": T0},
                )
        upgrade(ledger.engine)
        assert kept(ledger, "going") == {"queued": 2, "verified": 1}
        assert kept(ledger, "done") == {}
