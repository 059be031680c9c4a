"""End of a run: reports on disk, the run's row in the ledger closed, a result to return."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callerid.inbox import store
from callerid.pipeline import ledger_ops
from callerid.pipeline.report import (
    failure_rows,
    summary_markdown,
    write_run_reports,
)
from callerid.pipeline.runner import describe_failure
from callerid.pipeline.session import Pipeline

if TYPE_CHECKING:
    from callerid.ingest import IngestResult

log = logging.getLogger(__name__)


class RunIncompleteError(Exception):
    """Some steps of a run failed after their retries; its reports were written all the same.
    Plain values only (Prefect pickles a flow's exception)."""

    def __init__(self, run_id: str, reasons: list[str], result: dict[str, Any]) -> None:
        super().__init__(run_id, reasons, result)
        self.run_id = run_id
        self.reasons = list(reasons)
        self.result = result

    def __repr__(self) -> str:
        return f"RunIncompleteError({str(self)!r})"

    def __str__(self) -> str:
        return (
            f"run {self.run_id} is incomplete ({'; '.join(self.reasons)}); its reports are in "
            f"{self.result.get('results_csv')}: rerun with the same file to finish it"
        )


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
    incomplete: list[str] = field(default_factory=list)  # steps that failed: why

    @property
    def complete(self) -> bool:
        return not self.incomplete

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "counts": self.counts,
            "not_verified": self.not_verified,
            "results_csv": self.results_csv,
            "rejects_csv": self.rejects_csv,
            "sandbox": self.sandbox,
            "incomplete": list(self.incomplete),
        }


def forget_spent_codes(pipeline: Pipeline) -> int:
    """Mask the codes of the account's inbox messages whose use is over (see inbox.store)."""
    with pipeline.ledger.unit_of_work() as uow:
        changed = store.retire_ended(uow.session, pipeline.clock.now(), pipeline.account)
        uow.commit()
    return changed


def _failed(what: str, exc: Exception) -> str:
    reason = f"{what} ({describe_failure(exc)})"
    log.error("%s", reason)
    return reason


def write_reports(
    pipeline: Pipeline,
    ingest: IngestResult,
    *,
    elapsed_s: float,
    incomplete: list[str] | None = None,
) -> RunResult:
    """Write the reports from what the ledger knows. `incomplete`: the steps that failed, with
    why; the summary says so, and the run's row stays open (the next run carries on)."""
    incomplete = list(incomplete or [])
    # The ledger may be what failed the run: each read or write here that fails is said in the
    # summary, and the files are written from what is known all the same.
    try:
        forget_spent_codes(pipeline)
    except Exception as exc:
        incomplete.append(_failed("reports: spent codes not masked", exc))
    missing = "not in ledger"
    try:
        outcomes = ledger_ops.outcomes(pipeline, pipeline.e164s)
    except Exception as exc:
        incomplete.append(_failed("reports: the ledger could not be read", exc))
        outcomes, missing = {}, "the ledger could not be read at the end of the run"
    counts = write_run_reports(pipeline.paths, ingest, outcomes, missing)
    if not incomplete:
        try:
            ledger_ops.finish_run(pipeline, counts)
        except Exception as exc:
            incomplete.append(_failed("reports: the run's row not closed", exc))
    markdown = summary_markdown(
        run_id=pipeline.run_id,
        csv_path=str(pipeline.csv_path),
        counts=counts,
        paths=pipeline.paths,
        sandbox=pipeline.uses_sandbox,
        elapsed_s=elapsed_s,
        incomplete=incomplete,
    )
    pipeline.paths.summary_md.write_text(markdown, encoding="utf-8")
    return RunResult(
        run_id=pipeline.run_id,
        counts=counts,
        not_verified=sum(1 for o in outcomes.values() if not o.ok),
        results_csv=str(pipeline.paths.results_csv),
        rejects_csv=str(pipeline.paths.rejects_csv),
        summary_markdown=markdown,
        failures=failure_rows(outcomes),
        sandbox=pipeline.uses_sandbox,
        incomplete=incomplete,
    )
