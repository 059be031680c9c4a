"""The whole run without Prefect: the same core calls the flow makes, in the same order.

Used by integration tests (fast, no server) and by `benchmarks/bench_flow.py` as the baseline the
flow's orchestration overhead is measured against.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from callerid.ingest import IngestResult, ingest_csv
from callerid.pipeline import account, ledger_ops, ledger_reads, steps
from callerid.pipeline.environment import PlivoAccessError, open_run
from callerid.pipeline.finish import RunResult, forget_spent_codes, write_reports
from callerid.pipeline.options import PipelineOptions
from callerid.pipeline.progress import Progress, write_progress
from callerid.pipeline.runner import StepFailures, Work, drive
from callerid.pipeline.session import Pipeline, StepResult
from callerid.plivo import RateLimiter
from callerid.settings import Settings


class PlainOps:
    """`runner.LoopOps` calling the core step functions directly."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.writer = ProgressWriter(pipeline)

    async def sync_clock(self) -> None:
        await self.pipeline.sync_clock()

    async def work(self) -> Work:
        return await asyncio.to_thread(
            ledger_ops.work, self.pipeline, steps.decision_time(self.pipeline)
        )

    async def complete(self) -> StepResult:
        return await steps.complete_matched(self.pipeline)

    async def expire(self) -> StepResult:
        done = await steps.expire_due(self.pipeline)
        await asyncio.to_thread(forget_spent_codes, self.pipeline)  # windows just ended
        return done

    async def initiate(self, limit: int) -> StepResult:
        return await steps.initiate_batch(self.pipeline, limit)

    async def progress(self, work: Work) -> None:
        await asyncio.to_thread(self.writer.write, work)

    async def idle(self, work: Work) -> None:
        return None


class ProgressWriter:
    """Rewrites the run's progress.json at most twice a second, when the counts changed, and
    always at the end. The counts come from the loop's shared look at the ledger (O(1) in the
    run's size)."""

    def __init__(self, pipeline: Pipeline, min_interval_s: float = 0.5) -> None:
        self.pipeline = pipeline
        self.min_interval_s = min_interval_s
        self._last = float("-inf")
        self._written: Progress | None = None

    def write(self, work: Work, *, phase: str = "verifying") -> None:
        now = time.monotonic()
        if not work.finished and now - self._last < self.min_interval_s:
            return
        self._last = now
        counts = ledger_reads.run_counts(self.pipeline)
        progress = Progress(len(self.pipeline.e164s), counts, phase=phase, done=work.finished)
        if progress == self._written:
            return  # waiting for codes: nothing moved, nothing to rewrite
        write_progress(self.pipeline.paths.progress_json, progress)
        self._written = progress


async def run_plain(
    csv_path: str | Path,
    settings: Settings,
    options: PipelineOptions,
    *,
    run_id: str,
    follow_sandbox_clock: bool = False,
    limiter: RateLimiter | None = None,
) -> RunResult:
    started = time.monotonic()
    ingest: IngestResult = ingest_csv(
        Path(csv_path),
        default_region=options.default_region,
        encoding=options.encoding,
        default_channel=options.channel,
        default_subaccount=options.subaccount,
        sheet=options.sheet,
        default_owner=options.owner,
    )
    async with open_run(
        settings,
        options,
        run_id=run_id,
        csv_path=str(csv_path),
        follow_sandbox_clock=follow_sandbox_clock,
        limiter=limiter,
    ) as pipeline:
        failed = StepFailures()
        # Refused or unreachable: no number is touched, and the reports say why (as the flow's).
        try:
            await pipeline.check_access()
        except PlivoAccessError as exc:
            failed.reasons.append(str(exc))

        async def register() -> int:
            return await asyncio.to_thread(ledger_ops.register, pipeline, ingest)

        # Each step fails alone (after its own retries); the reports are written whatever failed.
        if not failed and await failed.contain("register", register) is not None:
            await failed.contain("list the account", lambda: account.sync_listed(pipeline))
            await failed.contain("recover", lambda: account.recover(pipeline))
            await failed.contain("verify", lambda: drive(PlainOps(pipeline), options))
            await failed.contain("confirm", lambda: account.confirm(pipeline))
        return write_reports(
            pipeline, ingest, elapsed_s=time.monotonic() - started, incomplete=failed.reasons
        )
