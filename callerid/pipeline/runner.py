"""The verification loop, as one function that both the Prefect flow and plain Python drive.

    repeat:  complete what the inbox matched (completions first: they have a deadline)
             expire what missed its window, resolve what a crash left mid-call, re-queue
             initiate up to `max_in_flight` live verifications, a batch at a time
    until    every number of this run is final

`LoopOps` supplies the steps. The flow's implementation calls Prefect tasks; `PlainOps` calls the
core functions directly. Steps are only called when a cheap look at the ledger (`Work`) says they
have something to do, so an hour of waiting for OTPs costs polls, not thousands of task runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from callerid.pipeline.options import PipelineOptions
from callerid.pipeline.session import StepResult


@dataclass(frozen=True, slots=True)
class Work:
    """What the ledger says is waiting, for this account (and `pending` for this run)."""

    new_messages: int  # inbox messages not yet matched
    queued: int  # this run's numbers waiting to be initiated
    live: int  # verifications in flight for the account (initiating/initiated/completing)
    due: int  # live verifications whose window has ended, or crash leftovers to resolve
    pending: int  # this run's numbers not yet final

    @property
    def finished(self) -> bool:
        return self.pending == 0


class LoopOps(Protocol):
    async def sync_clock(self) -> None: ...

    def work(self) -> Work: ...

    async def complete(self) -> StepResult: ...

    async def expire(self) -> StepResult: ...

    async def initiate(self, limit: int) -> StepResult: ...

    async def progress(self, work: Work) -> None: ...

    async def idle(self, work: Work) -> None:
        """Called when nothing could progress this round (e.g. to ask a person for codes)."""
        ...


async def drive(ops: LoopOps, options: PipelineOptions, *, clock_sync_every_s: float = 0.5) -> Work:
    """Run the loop until every number of the run is final; return the last look at the ledger."""
    last_sync = float("-inf")
    while True:
        if time.monotonic() - last_sync >= clock_sync_every_s:
            await ops.sync_clock()
            last_sync = time.monotonic()
        work = ops.work()
        moved = False
        if work.new_messages:
            moved |= bool(await ops.complete())
        if work.due:
            moved |= bool(await ops.expire())
        if moved:
            work = ops.work()
        room = options.max_in_flight - work.live
        if work.queued and room > 0:
            moved |= bool(await ops.initiate(min(room, options.batch_size)))
            work = ops.work()
        await ops.progress(work)
        if work.finished:
            return work
        if not moved:
            await ops.idle(work)
            await asyncio.sleep(options.poll_interval_s)
