"""The instant-reply loop, many times over (issue 14: "0 in 50 runs" of the matcher stall).

The sandbox answers each initiate and texts its code at once, so the code reaches the inbox
while the number is still `initiating` (its initiate not yet recorded), or just as it turns
`initiated`, between the matcher's reads: exactly where codes used to be written off as
"no waiting number" and their numbers left to wait out 15 minutes. Each run must verify every
number with one OTP, every message must end `used`, and nothing may be written off.

A run that stalls waits for a window: it is cut off after `STALL_S` and fails the test.
Runs: 50 of each (the issue's figure; `CALLERID_STRESS_RUNS` / `CALLERID_STRESS_FLOW_RUNS`
override them). Measured on the 2-core box under a load of ~16: plain loop 50 runs in 69 s,
flow ~4 s a run (20 runs in 84 s) once Prefect's test server is up.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from callerid.ledger.models import InboxMessage
from callerid.pipeline import PipelineOptions
from callerid.pipeline.plain import run_plain
from callerid.settings import load_settings
from tests.e2e.conftest import World
from tests.e2e.helpers import read_csv, valid_numbers, write_csv

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("CALLERID_STRESS_RUNS", "50"))
FLOW_RUNS = int(os.environ.get("CALLERID_STRESS_FLOW_RUNS", "50"))
N = 5
STALL_S = 120.0


def _numbers(run: int, prefix: str) -> list[str]:
    return valid_numbers(N * (run + 1), prefix=prefix)[N * run :]


def _check(world: World, numbers: list[str], result: dict[str, Any], run: int) -> None:
    rows = read_csv(Path(str(result["results_csv"])))
    statuses = {r["phone_number"]: r["status"] for r in rows}
    assert statuses == {n: "verified" for n in numbers}, f"run {run}"
    counts = world.sandbox.backend.stats()["numbers"]
    assert {n: counts[n]["initiations"] for n in numbers} == {n: 1 for n in numbers}, f"run {run}"
    senders = [n.lstrip("+") for n in numbers] + numbers
    with world.ledger.unit_of_work() as uow:
        query = sa.select(InboxMessage.status, InboxMessage.note).where(
            InboxMessage.from_number.in_(senders)
        )
        settled = list(uow.session.execute(query))
    assert len(settled) == N and {s for s, _ in settled} == {"used"}, (run, settled)


def _instant(world: World, tmp_path: Path) -> None:
    world.sandbox.network.configure(reply_delay_s=0.0)


def test_the_plain_loop_never_writes_off_an_instant_code(world: World, tmp_path: Path) -> None:
    _instant(world, tmp_path)
    options = PipelineOptions(poll_interval_s=0.05, max_attempts=2, batch_size=N)
    for run in range(RUNS):
        numbers = _numbers(run, "+1646555")
        csv_path = write_csv(tmp_path / f"plain-{run}.csv", ({"phone_number": n} for n in numbers))
        result = asyncio.run(
            asyncio.wait_for(
                run_plain(
                    csv_path,
                    load_settings(),
                    options,
                    run_id=f"plain-{run}",
                    follow_sandbox_clock=True,
                ),
                STALL_S,
            )
        )
        _check(world, numbers, result.as_dict(), run)


def test_the_flow_never_writes_off_an_instant_code(
    prefect_api: str, world: World, tmp_path: Path
) -> None:
    from flows.bulk_verify import bulk_verify

    _instant(world, tmp_path)
    for run in range(FLOW_RUNS):
        numbers = _numbers(run, "+1718555")
        csv_path = write_csv(tmp_path / f"flow-{run}.csv", ({"phone_number": n} for n in numbers))
        result = asyncio.run(
            asyncio.wait_for(
                bulk_verify(
                    str(csv_path),
                    max_attempts=2,
                    batch_size=N,
                    follow_sandbox_clock=True,
                    shared_rate_limit=False,
                    poll_interval_s=0.05,
                    run_id=f"flow-{run}",
                ),
                STALL_S,
            )
        )
        _check(world, numbers, result, run)
