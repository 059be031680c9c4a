"""End of a run: reports on disk, the run's row in the ledger closed, a result to return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callerid.pipeline import ledger_ops
from callerid.pipeline.report import (
    failure_rows,
    status_counts,
    summary_markdown,
    write_run_reports,
)
from callerid.pipeline.session import Pipeline

if TYPE_CHECKING:
    from callerid.ingest import IngestResult


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    counts: dict[str, int]  # by status, over every input row (rejected rows as "rejected")
    not_verified: int  # accepted numbers that did not end verified / already_verified
    results_csv: str
    rejects_csv: str
    summary_markdown: str = field(repr=False)
    failures: list[dict[str, Any]] = field(repr=False)
    sandbox: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "counts": self.counts,
            "not_verified": self.not_verified,
            "results_csv": self.results_csv,
            "rejects_csv": self.rejects_csv,
            "sandbox": self.sandbox,
        }


def write_reports(pipeline: Pipeline, ingest: IngestResult, *, elapsed_s: float) -> RunResult:
    outcomes = ledger_ops.outcomes(pipeline, pipeline.e164s)
    rows = write_run_reports(pipeline.paths, ingest, outcomes)
    counts = status_counts(rows)
    markdown = summary_markdown(
        run_id=pipeline.run_id,
        csv_path=str(pipeline.csv_path),
        counts=counts,
        paths=pipeline.paths,
        sandbox=pipeline.uses_sandbox,
        elapsed_s=elapsed_s,
    )
    pipeline.paths.summary_md.write_text(markdown, encoding="utf-8")
    ledger_ops.finish_run(pipeline, counts)
    return RunResult(
        run_id=pipeline.run_id,
        counts=counts,
        not_verified=sum(1 for o in outcomes.values() if not o.ok),
        results_csv=str(pipeline.paths.results_csv),
        rejects_csv=str(pipeline.paths.rejects_csv),
        summary_markdown=markdown,
        failures=failure_rows(outcomes),
        sandbox=pipeline.uses_sandbox,
    )
