"""Helpers for the ledger tests: a fixed clock origin, numbers to register, quick state setup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from callerid.clock import Clock
from callerid.ledger import Ledger, Number, NumberRecord, NumberStatus
from callerid.pipeline import PipelineOptions
from callerid.pipeline.options import RunPaths
from callerid.pipeline.session import Pipeline
from callerid.plivo import PlivoClient, RateLimiter

ACCOUNT = "MAACCOUNT000000000001"
OTHER = "MAACCOUNT000000000002"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RUN = "run-1"


def e164s(n: int, start: int = 0) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(start, start + n)]


def records(n: int, start: int = 0, **details: str) -> list[NumberRecord]:
    return [NumberRecord(e, **details) for e in e164s(n, start)]


def register(ledger: Ledger, n: int, *, account: str = ACCOUNT, now: datetime = T0) -> None:
    with ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(account, records(n), RUN, now)
        uow.commit()


def statuses(ledger: Ledger, account: str = ACCOUNT) -> dict[str, str]:
    with ledger.unit_of_work() as uow:
        return {n.e164: n.status for n in uow.numbers.by_status(account)}


def number(ledger: Ledger, e164: str, account: str = ACCOUNT) -> Number:
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(account, e164)
        assert row is not None, e164
        return row


def drive(ledger: Ledger, e164: str, *path: NumberStatus, now: datetime = T0) -> None:
    """Walk one number through `path` with legal transitions (test setup)."""
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, e164)
        assert row is not None
        for step in path:
            fields = {}
            if step is NumberStatus.INITIATED:
                fields = {
                    "verification_uuid": f"uuid-{e164}",
                    "initiated_at": now,
                    "expires_at": now + timedelta(minutes=15),
                }
            uow.numbers.transition(row, step, reason="setup", run_id=RUN, now=now, **fields)
        uow.commit()


def offline_pipeline(
    ledger: Ledger, paths_root: Path, *, account: str, clock: Clock, run_id: str = "run"
) -> Pipeline:
    """A pipeline for the ledger side of the steps: its client points at a closed port and is
    never called (what the test drives makes no API call)."""
    return Pipeline(
        account=account,
        ledger=ledger,
        client=PlivoClient(account, "t", "http://127.0.0.1:9", limiter=RateLimiter(10, 1)),
        clock=clock,
        run_id=run_id,
        options=PipelineOptions(),
        paths=RunPaths.for_run(paths_root, run_id),
    )
