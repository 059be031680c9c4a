"""The bulk-verification pipeline as plain functions (no Prefect): `flows/bulk_verify.py` wraps it.

    ingest -> register -> list the account -> recover -> loop {complete, expire, initiate}
    -> list again -> reports

`environment.open_run` opens what a run talks to (ledger, Plivo or the local sandbox, clock) as a
`Pipeline`; the steps live in `steps` (batch API calls) and `account` (listing, recovery, plan);
`runner.drive` is the loop; `plain.run_plain` is the whole run without Prefect. The names below
are imported when first used, so importing `callerid.pipeline.options` (as the CLI does before
anything starts) touches no database library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callerid.pipeline.options import PipelineOptions, RunPaths
    from callerid.pipeline.plan import Plan, build_plan
    from callerid.pipeline.progress import Progress, read_progress
    from callerid.pipeline.report import NumberOutcome
    from callerid.pipeline.runner import Work, drive
    from callerid.pipeline.session import Pipeline, StepResult

_HOMES = {
    "NumberOutcome": "report",
    "Pipeline": "session",
    "PipelineOptions": "options",
    "Plan": "plan",
    "Progress": "progress",
    "RunPaths": "options",
    "StepResult": "session",
    "Work": "runner",
    "build_plan": "plan",
    "drive": "runner",
    "read_progress": "progress",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
