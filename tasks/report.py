"""Prefect side of the reports: the files come from `callerid.pipeline.report`, the artifacts here.

Artifact keys are lowercase-with-dashes (Prefect rejects anything else). Only counts, statuses
and reasons go into them: never an OTP code or a token.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from callerid.ingest import IngestResult
from callerid.pipeline import finish
from callerid.pipeline.plan import Plan
from callerid.pipeline.report import reject_reason
from callerid.pipeline.runner import Work, describe_failure
from callerid.pipeline.session import Pipeline

# A table artifact is one API call and one page in the UI: past this many rows, the last row
# points to the CSV reports instead.
MAX_ARTIFACT_ROWS = 500
SUMMARY_KEY = "bulk-verify-summary"
FAILURES_KEY = "bulk-verify-failures"
PROGRESS_KEY = "bulk-verify-progress"
PLAN_KEY = "bulk-verify-plan"


@task(name="write-reports", cache_policy=NO_CACHE, retries=0, persist_result=False)
async def report_task(
    pipeline: Pipeline,
    ingest: IngestResult,
    elapsed_s: float,
    incomplete: list[str] | None = None,
) -> finish.RunResult:
    """results.csv + rejects.csv + summary.md, then the summary and failures artifacts.

    The files come first and do not depend on the Prefect API: an artifact that cannot be
    created is logged, and the run is marked incomplete, but the reports stay written.
    """
    result = finish.write_reports(pipeline, ingest, elapsed_s=elapsed_s, incomplete=incomplete)
    try:
        await acreate_markdown_artifact(
            result.summary_markdown, key=SUMMARY_KEY, description="Run summary"
        )
        await acreate_table_artifact(
            failures_table(result.failures, ingest, result.rejects_csv),
            key=FAILURES_KEY,
            description="Rows that were rejected and numbers that did not verify, and why",
        )
    except Exception as exc:
        reason = f"reports: artifacts not published ({describe_failure(exc)})"
        get_run_logger().error("%s; the files are in %s", reason, pipeline.paths.root)
        result = replace(result, incomplete=[*result.incomplete, reason])
    return result


def failures_table(
    failures: list[dict[str, Any]], ingest: IngestResult, rejects_csv: str
) -> list[dict[str, Any]]:
    """Every row that did not end verified: rejected rows (line, what was written, why) first,
    then numbers that did not verify. One set of columns, as a table artifact needs."""
    rows: list[dict[str, Any]] = []
    for rejected in ingest.rejected:
        reason = reject_reason(rejected)
        rows.append(
            {
                "line": rejected.line,
                "input": rejected.raw,
                "phone_number": "",
                "status": "rejected",
                "attempts": 0,
                "reason": reason,
            }
        )
    for failure in failures:
        rows.append(
            {
                "line": "",
                "input": "",
                "phone_number": failure.get("phone_number", ""),
                "status": failure.get("status", ""),
                "attempts": failure.get("attempts", 0),
                "reason": failure.get("reason", ""),
            }
        )
    if not rows:
        return [
            {
                "line": "",
                "input": "",
                "phone_number": "",
                "status": "",
                "attempts": 0,
                "reason": "every row verified: none rejected, none failed",
            }
        ]
    if len(rows) > MAX_ARTIFACT_ROWS:
        more = len(rows) - MAX_ARTIFACT_ROWS + 1
        rows = rows[: MAX_ARTIFACT_ROWS - 1]
        rows.append(
            {
                "line": "",
                "input": "",
                "phone_number": "",
                "status": "",
                "attempts": 0,
                "reason": f"... and {more} more rows: see {rejects_csv} and results.csv",
            }
        )
    return rows


async def publish_plan(plan: Plan) -> None:
    lines = "\n".join(f"- {line}" for line in plan.lines())
    await acreate_markdown_artifact(
        f"# Dry run: nothing was sent\n\n{lines}\n", key=PLAN_KEY, description="Dry-run plan"
    )


class ProgressArtifact:
    """One progress artifact per run, updated in place at most every `min_interval_s` (each
    update is an API call to the Prefect server) and always when the run is finished."""

    def __init__(self, min_interval_s: float = 2.0) -> None:
        self.min_interval_s = min_interval_s
        self._id: UUID | None = None
        self._last: float = -1.0
        self._at = float("-inf")

    async def update(self, work: Work, total: int) -> None:
        pct = 100.0 if total == 0 else round(100.0 * (total - work.pending) / total, 1)
        now = time.monotonic()
        if pct == self._last or (not work.finished and now - self._at < self.min_interval_s):
            return
        description = f"{total - work.pending} of {total} numbers final"
        if self._id is None:
            self._id = await acreate_progress_artifact(
                pct, key=PROGRESS_KEY, description=description
            )
        else:
            await aupdate_progress_artifact(self._id, pct, description=description)
        self._last, self._at = pct, now

    def as_dict(self) -> dict[str, Any]:
        return {"id": str(self._id) if self._id else None, "progress": self._last}
