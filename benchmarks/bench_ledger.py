"""Benchmark: the ledger's bulk paths on file SQLite and PostgreSQL.

For each database: register 100,000 numbers with `upsert_many` (commit every 10,000), register
them again (a rerun of the same file: every number known), then claim them all
queued -> initiating in batches of 200 (one commit per claim, as the flow does). Each is printed
as rows/s and as a ratio to a baseline measured in the same run on the same database: a bare
Core executemany INSERT of the same rows into a scratch table without constraints or events, and
a bare `UPDATE .. WHERE id IN (200 ids)` per batch. 1.0 = as fast as the bare statements.

    uv run --frozen python benchmarks/bench_ledger.py [--rows 100000] [--batch 200] [--no-pg]

PostgreSQL: CALLERID_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test) is
used to create a scratch database, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callerid.ledger import Ledger, NumberRecord, NumberStatus, open_ledger

ACCOUNT = "MABENCHMARK000000001"
COMMIT_EVERY = 10_000
PG_ADMIN = os.environ.get(
    "CALLERID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _records(n: int) -> list[NumberRecord]:
    return [
        NumberRecord(f"+1{2000000000 + i}", alias=f"line {i % 97}", country="US") for i in range(n)
    ]


def _upsert(ledger: Ledger, records: list[NumberRecord], now: datetime) -> None:
    for start in range(0, len(records), COMMIT_EVERY):
        with ledger.unit_of_work() as uow:
            uow.numbers.upsert_many(ACCOUNT, records[start : start + COMMIT_EVERY], "bench", now)
            uow.commit()


def _claim_all(ledger: Ledger, batch: int, now: datetime) -> int:
    total = 0
    while True:
        with ledger.unit_of_work() as uow:
            got = uow.numbers.claim(
                ACCOUNT, [NumberStatus.QUEUED], NumberStatus.INITIATING, batch, now, "b", "bench"
            )
            uow.commit()
        if not got:
            return total
        total += len(got)


def _baseline(engine: sa.Engine, records: list[NumberRecord], batch: int) -> tuple[float, float]:
    """Bare INSERT executemany and bare UPDATE-by-ids batches on a scratch table."""
    meta = sa.MetaData()
    table = sa.Table(
        "bench_baseline",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64)),
        sa.Column("e164", sa.String(20)),
        sa.Column("alias", sa.String(64)),
        sa.Column("country", sa.String(2)),
        sa.Column("channel", sa.String(8)),
        sa.Column("status", sa.String(20)),
    )
    meta.drop_all(engine)
    meta.create_all(engine)
    rows = [
        {
            "account": ACCOUNT,
            "e164": r.e164,
            "alias": r.alias,
            "country": r.country,
            "channel": r.channel,
            "status": "queued",
        }
        for r in records
    ]

    def insert() -> None:
        for start in range(0, len(rows), COMMIT_EVERY):
            with engine.begin() as conn:
                conn.execute(table.insert(), rows[start : start + COMMIT_EVERY])

    def update() -> None:
        for start in range(1, len(rows) + 1, batch):
            with engine.begin() as conn:
                ids = list(range(start, min(start + batch, len(rows) + 1)))
                conn.execute(table.update().where(table.c.id.in_(ids)).values(status="x"))

    insert_s, update_s = _timed(insert), _timed(update)
    meta.drop_all(engine)
    return insert_s, update_s


def bench(name: str, url: str, rows: int, batch: int) -> None:
    records = _records(rows)
    now = datetime.now(UTC)
    with open_ledger(url) as ledger:
        base_insert, base_update = _baseline(ledger.engine, records, batch)
        upsert_s = _timed(lambda: _upsert(ledger, records, now))
        again_s = _timed(lambda: _upsert(ledger, records, now))
        claimed: list[int] = []
        claim_s = _timed(lambda: claimed.append(_claim_all(ledger, batch, now)))
    assert claimed == [rows], claimed
    print(f"\n{name} ({rows:,} numbers, claims of {batch})")
    print(f"  {'step':<34}{'seconds':>9}{'rows/s':>11}{'vs bare':>9}")
    for label, seconds, base in (
        ("bare INSERT executemany", base_insert, base_insert),
        ("upsert_many, new numbers", upsert_s, base_insert),
        ("upsert_many, all known (rerun)", again_s, base_insert),
        (f"bare UPDATE by {batch} ids", base_update, base_update),
        (f"claim {batch} -> initiating + commit", claim_s, base_update),
    ):
        # vs bare: the baseline's time over ours (1.0 = as fast, 0.5 = twice as slow).
        print(f"  {label:<34}{seconds:>9.2f}{rows / seconds:>11,.0f}{base / seconds:>9.2f}")


@contextmanager
def scratch_pg() -> Iterator[str]:
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"callerid_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench("SQLite (file, WAL)", f"sqlite:///{folder}/ledger.sqlite3", args.rows, args.batch)
    if not args.no_pg:
        with scratch_pg() as url:
            bench("PostgreSQL", url, args.rows, args.batch)


if __name__ == "__main__":
    main()
