"""The end of a run writes its reports even when the ledger is what fails (issue 13: "a run always
ends with its reports ... saying what is incomplete and why").

A real SQLite ledger is broken under the run by renaming away the table a step needs: the inbox
(the spent codes cannot be masked), the numbers (no outcome can be read) or the runs (the run's
row cannot be closed). results.csv, rejects.csv and summary.md are written all the same, every
input row is in them, and the summary says which part failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from callerid.clock import SystemClock
from callerid.ingest import ingest_csv
from callerid.ledger import open_ledger
from callerid.pipeline import ledger_ops
from callerid.pipeline.finish import write_reports
from callerid.sandbox import DEFAULT_AUTH_ID
from tests.e2e.helpers import read_csv, valid_numbers, write_csv
from tests.ledger_support import offline_pipeline

NUMBERS = valid_numbers(3, prefix="+1646558")


@pytest.mark.parametrize(
    ("table", "said", "status"),
    [
        ("inbox_messages", "reports: spent codes not masked", "queued"),
        ("numbers", "reports: the ledger could not be read", "unknown"),
        ("runs", "reports: the run's row not closed", "queued"),
    ],
)
def test_a_broken_ledger_at_the_end_still_gives_every_report(
    tmp_path: Path, table: str, said: str, status: str
) -> None:
    rows = [{"phone_number": n} for n in NUMBERS] + [{"phone_number": "not a number"}]
    ingest = ingest_csv(write_csv(tmp_path / "numbers.csv", rows))
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}") as ledger:
        pipeline = offline_pipeline(
            ledger, tmp_path / "out", account=DEFAULT_AUTH_ID, clock=SystemClock(), run_id="end"
        )
        assert ledger_ops.register(pipeline, ingest) == len(NUMBERS)
        with ledger.unit_of_work() as uow:
            uow.session.execute(sa.text(f"ALTER TABLE {table} RENAME TO {table}_gone"))
            uow.commit()

        result = write_reports(pipeline, ingest, elapsed_s=1.0)

    assert [r for r in result.incomplete if r.startswith(said)], result.incomplete
    results = {r["phone_number"]: r for r in read_csv(Path(result.results_csv))}
    assert {n: results[n]["status"] for n in NUMBERS} == dict.fromkeys(NUMBERS, status)
    assert len(read_csv(Path(result.rejects_csv))) == 1
    summary = pipeline.paths.summary_md.read_text(encoding="utf-8")
    assert "incomplete" in summary and said in summary
