"""Several processes claim from one PostgreSQL ledger: no number twice, none lost.

Four spawned processes open a fresh database together (so they also race to migrate it), one
registers 1,000 queued numbers, then all claim batches of 25 with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from pathlib import Path

import pytest

from callerid.ledger import NumberStatus, open_ledger
from tests.ledger_workers import ACCOUNT, claim_until_empty

pytestmark = pytest.mark.postgres

WORKERS, TOTAL, BATCH = 4, 1000, 25


def test_processes_claiming_together_never_share_or_lose_a_number(
    pg_url: str, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("spawn")
    gate = context.Barrier(WORKERS)
    outs = [tmp_path / f"worker-{i}.json" for i in range(WORKERS)]
    workers = [
        context.Process(
            target=claim_until_empty, args=(pg_url, i, TOTAL, BATCH, gate, str(outs[i]))
        )
        for i in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join(180)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [w.exitcode for w in workers] == [0] * WORKERS
    claimed = {i: json.loads(out.read_text()) for i, out in enumerate(outs)}

    everything = [e164 for got in claimed.values() for e164 in got]
    assert len(everything) == TOTAL  # nothing claimed twice ...
    assert set(everything) == {f"+1312555{i:04d}" for i in range(TOTAL)}  # ... and nothing lost
    assert all(got for got in claimed.values()), {i: len(g) for i, g in claimed.items()}

    with open_ledger(pg_url, migrate=False) as ledger, ledger.unit_of_work() as uow:
        rows = uow.numbers.by_status(ACCOUNT)
        assert {r.status for r in rows} == {NumberStatus.INITIATING.value}
        owner = {e164: f"worker-{i}" for i, got in claimed.items() for e164 in got}
        assert all(r.last_run_id == owner[r.e164] for r in rows)
        claims = Counter(e.to_status for e in uow.events.for_run("worker-0"))
        claims.update(
            e.to_status for i in range(1, WORKERS) for e in uow.events.for_run(f"worker-{i}")
        )
        assert claims == {"initiating": TOTAL}  # one claim event per number, by its owner
