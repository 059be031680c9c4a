"""Worker processes for the multi-process claim test (apart from pytest: spawn imports this)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callerid.ledger import NumberRecord, NumberStatus, open_ledger

ACCOUNT = "MACLAIMTEST000000001"


def claim_until_empty(url: str, index: int, total: int, batch: int, gate: Any, out: str) -> None:
    """Open (and migrate: all workers race to), let worker 0 register `total` numbers, then
    claim batches until none are left; write what this worker got to `out`."""
    with open_ledger(url) as ledger:
        gate.wait(120)
        if index == 0:
            with ledger.unit_of_work() as uow:
                records = [NumberRecord(f"+1312555{i:04d}") for i in range(total)]
                uow.numbers.upsert_many(ACCOUNT, records, "register", datetime.now(UTC))
                uow.commit()
        gate.wait(120)
        claimed: list[str] = []
        while True:
            with ledger.unit_of_work() as uow:
                rows = uow.numbers.claim(
                    ACCOUNT,
                    [NumberStatus.QUEUED],
                    NumberStatus.INITIATING,
                    batch,
                    datetime.now(UTC),
                    f"worker-{index}",
                    "initiate",
                )
                got = [row.e164 for row in rows]
                # Hold the row locks a moment, as a claimer with work to do would, so that the
                # workers really overlap instead of taking turns.
                time.sleep(0.005)
                uow.commit()
            if not got:
                break
            claimed.extend(got)
    Path(out).write_text(json.dumps(claimed))


def open_fresh_ledgers(urls: list[str], gate: Any, out: str) -> None:
    """Open each of `urls` (fresh databases) in turn, all workers together at each one; write the
    errors met (as text) to `out`."""
    errors: list[str] = []
    for url in urls:
        gate.wait(120)
        try:
            with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
                uow.numbers.by_status("nobody")
        except Exception as exc:  # reported to the test
            errors.append(repr(exc))
    Path(out).write_text(json.dumps(errors))
