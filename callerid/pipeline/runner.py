"""The verification loop, as one function that both the Prefect flow and plain Python drive.

    complete what the inbox matched (first in the limiter's queue: they have a deadline)
    | initiate up to `max_in_flight` live verifications, a batch at a time
    | expire what missed its window, resolve what a crash left mid-call, re-queue
    until every number of this run is final

`LoopOps` supplies the steps. The flow's implementation calls Prefect tasks; `PlainOps` calls the
core functions directly. Steps are only called when a cheap look at the ledger (`Work`) says they
have something to do, so an hour of waiting for OTPs costs polls, not thousands of task runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.exc import StatementError

from callerid.masking import mask_codes_in_text
from callerid.pipeline.options import PipelineOptions
from callerid.pipeline.session import StepResult
from callerid.plivo import PlivoError

log = logging.getLogger(__name__)
T = TypeVar("T")


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


def describe_failure(exc: BaseException) -> str:
    """One line on why a step failed, safe for reports: an API error's own (masked) message; a
    database error without its statement or parameters; any stray 4-8 digit group masked."""
    cause: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        cause = exc.orig
    text = cause.message if isinstance(cause, PlivoError) else str(cause)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return mask_codes_in_text(f"{type(cause).__name__}: {first}".rstrip(": "))


@dataclass
class StepFailures:
    """Steps of a run that failed, each after its own retries: the run goes on without them,
    writes its reports, and says it is incomplete (the ledger keeps every number's state)."""

    reasons: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.reasons)

    async def contain(self, step: str, call: Callable[[], Awaitable[T]]) -> T | None:
        """Run one step; on failure record why and return None instead of raising."""
        try:
            return await call()
        except Exception as exc:
            reason = describe_failure(exc)
            self.reasons.append(f"{step}: {reason}")
            log.error(
                "step %r failed, the run goes on without it: %s",
                step,
                reason,
                exc_info=not isinstance(exc, PlivoError),  # a bug needs its traceback
            )
            return None


class LoopOps(Protocol):
    async def sync_clock(self) -> None: ...

    async def work(self) -> Work: ...

    async def complete(self) -> StepResult: ...

    async def expire(self) -> StepResult: ...

    async def initiate(self, limit: int) -> StepResult: ...

    async def progress(self, work: Work) -> None: ...

    async def idle(self, work: Work) -> None:
        """Called when the run only waits (e.g. to ask a person for the codes)."""
        ...


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def drive(ops: LoopOps, options: PipelineOptions, *, clock_sync_every_s: float = 0.5) -> Work:
    """Run the loop until every number of the run is final; return the last look at the ledger.

    Three lanes run at once. The completion lane submits matched codes as they arrive; the
    initiation lane keeps up to `max_in_flight` verifications live, a batch at a time; the
    supervisor follows the clock, expires and re-queues, reports progress and decides when the
    run is over. The two API lanes touch different numbers, the account's limiter serves
    completions first, and while one lane does its ledger bookkeeping the other keeps the limiter
    busy: no lane waits for the other's batch to end.
    """
    stop = asyncio.Event()
    last: list[Work] = []

    async def completion_lane() -> None:
        while not stop.is_set():
            work = await ops.work()
            done = await ops.complete() if work.new_messages else StepResult()
            if done.attempted < options.batch_size:
                # Not a full batch: let codes gather for a moment (one task run per batch, not
                # per code); a 15-minute window does not miss a fraction of a second.
                await _pause(stop, options.poll_interval_s)

    async def initiation_lane() -> None:
        while not stop.is_set():
            work = await ops.work()
            room = options.max_in_flight - work.live
            if not (work.queued and room > 0 and await ops.initiate(min(room, options.batch_size))):
                await _pause(stop, options.poll_interval_s)

    async def supervisor() -> None:
        last_sync = float("-inf")
        while True:
            if time.monotonic() - last_sync >= clock_sync_every_s:
                await ops.sync_clock()
                last_sync = time.monotonic()
            work = await ops.work()
            if work.due and await ops.expire():
                work = await ops.work()
            await ops.progress(work)
            if work.finished:
                last.append(work)
                stop.set()
                return
            if not work.queued and not work.new_messages:
                await ops.idle(work)
            await _pause(stop, options.poll_interval_s)

    try:
        async with asyncio.TaskGroup() as group:  # a failing lane cancels the others
            group.create_task(supervisor())
            group.create_task(completion_lane())
            group.create_task(initiation_lane())
    except BaseExceptionGroup as failed:
        if len(failed.exceptions) == 1:  # the usual case: say what went wrong, not "a group"
            raise failed.exceptions[0] from None
        raise
    return last[0]
