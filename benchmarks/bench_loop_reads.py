"""Benchmark: the ledger reads the loop (and the people lane) repeat every round, at 1,000 and
100,000 numbers in the run: each must cost the same at both sizes (issue 14: no scan of the run).

A file SQLite ledger per size: the run's numbers registered as the pipeline registers them, all
but a few `verified` (each with its used inbox message), a few `initiated` and waiting, owners
on every number. Then each read is repeated and its CPU time per call printed, with the ratio of
the large size to the small one (1.0 = flat).

    uv run --frozen python benchmarks/bench_loop_reads.py [--sizes 1000 100000] [--waiting 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callerid.clock import SystemClock
from callerid.inbox import store
from callerid.inbox.matcher import match_new_messages
from callerid.ledger import Ledger, NumberRecord, open_ledger
from callerid.ledger.recovery import interrupted
from callerid.people import waves
from callerid.pipeline import ledger_reads

ACCOUNT = "MABENCHMARK000000001"
RUN = "bench-run"


def build(folder: Path, count: int, waiting: int) -> Ledger:
    ledger = open_ledger(f"sqlite:///{folder / f'ledger-{count}.sqlite3'}")
    now = datetime.now(UTC)
    records = [NumberRecord(f"+1{2000000000 + i}", alias=f"line {i}") for i in range(count)]
    with ledger.unit_of_work() as uow:
        uow.runs.start_run(RUN, ACCOUNT, now=now)
        for start in range(0, count, 10_000):
            uow.numbers.upsert_many(ACCOUNT, records[start : start + 10_000], RUN, now)
        uow.commit()
    with ledger.engine.begin() as db:  # the statuses a run that only waits has reached
        db.execute(sa.text("UPDATE numbers SET owner = 'owner' || (id % 50) || '@example.com'"))
        window = {"at": now - timedelta(minutes=5), "ends": now + timedelta(minutes=10)}
        for status, which in (("verified", "id > :waiting"), ("initiated", "id <= :waiting")):
            db.execute(
                sa.text(
                    f"UPDATE numbers SET status = '{status}', verification_uuid = 'u' || id, "
                    f"initiated_at = :at, expires_at = :ends WHERE {which}"
                ),
                {**window, "waiting": waiting},
            )
        db.execute(
            sa.text(
                "INSERT INTO inbox_messages (account, source, external_id, text, received_at, "
                "matched_e164, status, created_at) SELECT account, 'webhook', 'm' || id, '', "
                ":at, e164, 'used', :at FROM numbers WHERE status = 'verified'"
            ),
            {"at": now - timedelta(minutes=4)},
        )
    return ledger


def per_call(fn: Callable[[], object], seconds: float = 1.0) -> float:
    """CPU seconds per call, over about `seconds` of calls (after one call: the first read folds
    the run's count rows, which the synthetic ledger's bulk UPDATEs left unfolded)."""
    fn()
    calls, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        fn()
        calls += 1
    return (time.process_time() - started) / calls


def reads(ledger: Ledger, count: int) -> dict[str, Callable[[], object]]:
    e164s = [f"+1{2000000000 + i}" for i in range(count)]
    pipeline: Any = SimpleNamespace(
        account=ACCOUNT, ledger=ledger, run_id=RUN, e164s=e164s, clock=SystemClock()
    )
    now = datetime.now(UTC)

    def look() -> object:
        return ledger_reads._read(pipeline, now - timedelta(seconds=30), 0, 0.0)

    def matcher() -> object:
        with ledger.unit_of_work() as uow:
            return match_new_messages(uow, ACCOUNT, now)

    def people_wave() -> object:
        with ledger.unit_of_work() as uow:
            members = waves.RunMembers(RUN)
            found = waves.needing_person(uow.session, ACCOUNT, members, now, timedelta(minutes=2))
            return waves.initiations_pending(uow.session, ACCOUNT, members) or found

    def leftovers() -> object:
        with ledger.unit_of_work() as uow:
            return interrupted(uow, ACCOUNT, now)

    def spent_codes() -> object:
        with ledger.unit_of_work() as uow:
            return store.retire_ended(uow.session, now, ACCOUNT)

    def expire() -> object:
        with ledger.unit_of_work() as uow:
            rows = uow.numbers.expire_due(ACCOUNT, now - timedelta(seconds=30), RUN, 2)
            uow.rollback()
            return rows

    return {
        "work() look (4 counts)": look,
        "matcher pass, no new message": matcher,
        "waiting_for_person": lambda: ledger_reads.waiting_for_person(
            pipeline, now, timedelta(minutes=2)
        ),
        "people lane: needing_person": people_wave,
        "interrupted (recovery)": leftovers,
        "expire_due, none due": expire,
        "retire_ended (after expiry)": spent_codes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 100_000])
    parser.add_argument("--waiting", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-loop-reads-") as tmp:
        for count in args.sizes:
            ledger = build(Path(tmp), count, args.waiting)
            try:
                for name, fn in reads(ledger, count).items():
                    results.setdefault(name, []).append(per_call(fn))
            finally:
                ledger.close()
    sizes = " / ".join(f"{n:,}" for n in args.sizes)
    print(f"CPU ms per call at {sizes} numbers (ratio last/first):")
    for name, times in results.items():
        shown = " / ".join(f"{1000 * t:.2f}" for t in times)
        print(f"  {name:<32} {shown}  ({times[-1] / times[0]:.2f})")


if __name__ == "__main__":
    main()
