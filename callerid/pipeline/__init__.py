"""The bulk-verification pipeline as plain functions (no Prefect): `flows/bulk_verify.py` wraps it.

    ingest -> register -> list the account -> recover -> loop {complete, expire, initiate}
    -> list again -> reports

`environment.open_run` opens what a run talks to (ledger, Plivo or the local sandbox, clock) as a
`Pipeline`; the steps live in `steps` (batch API calls) and `account` (listing, recovery, plan);
`runner.drive` is the loop; `plain.run_plain` is the whole run without Prefect. This package's
namespace holds only the light values, so importing an option or a report touches no database.
"""

from __future__ import annotations

from callerid.pipeline.options import PipelineOptions, RunPaths
from callerid.pipeline.plan import Plan, build_plan
from callerid.pipeline.progress import Progress, read_progress
from callerid.pipeline.report import NumberOutcome
from callerid.pipeline.runner import Work, drive
from callerid.pipeline.session import Pipeline, StepResult

__all__ = [
    "NumberOutcome",
    "Pipeline",
    "PipelineOptions",
    "Plan",
    "Progress",
    "RunPaths",
    "StepResult",
    "Work",
    "build_plan",
    "drive",
    "read_progress",
]
