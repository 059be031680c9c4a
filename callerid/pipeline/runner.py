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
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sqlalchemy.exc import DBAPIError, StatementError

from callerid.masking import mask_codes_in_text
from callerid.pipeline.options import PipelineOptions
from callerid.pipeline.session import StepResult
from callerid.plivo import PlivoError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Faults a lane's round may meet and pass (the ledger's database busy or its connection dropped,
# a progress file not written): the round is tried again, up to this many times in a row.
PASSING_FAULTS: tuple[type[Exception], ...] = (DBAPIError, OSError)
ROUND_FAILURES = 4


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


async def _pause(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Sleep `seconds`, or less when the run stops or `wake` is set."""
    waits = [stop.wait()] if wake is None else [stop.wait(), wake.wait()]
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class Pace:
    """Whether the run is busy or only waits, and how long its lanes pause between rounds.

    Busy (something moved in the last `idle_after_s`: the look at the ledger changed or a step
    did something): every lane looks at the ledger itself every `poll_interval_s`, as before.
    Waiting: only the supervisor looks, every `idle_poll_s`; the two API lanes sleep until its
    look changes (or `idle_poll_s` passes) and then act on that look. So an hour of waiting for
    the last codes costs one small read a second, not three lanes polling twice a second; the
    first change (a code filed by the receiver, a window ending) wakes everyone, and the run is
    busy again.
    """

    def __init__(self, options: PipelineOptions) -> None:
        self.busy_s = options.poll_interval_s
        self.idle_s = max(options.idle_poll_s, options.poll_interval_s)
        self.idle_after_s = options.idle_after_s
        self.last: Work | None = None
        self.moved_at = time.monotonic()
        self._wakes: list[asyncio.Event] = []

    def wake_event(self) -> asyncio.Event:
        event = asyncio.Event()
        self._wakes.append(event)
        return event

    @property
    def idle(self) -> bool:
        return time.monotonic() - self.moved_at >= self.idle_after_s

    def moved(self) -> None:
        """Something changed: busy again. Lanes asleep on an idle pause wake at once (a busy
        pause is not cut short: the lanes keep their busy pace)."""
        was_idle = self.idle
        self.moved_at = time.monotonic()
        if was_idle:
            for event in self._wakes:
                event.set()

    def saw(self, work: Work) -> Work:
        if work != self.last:
            self.last = work
            self.moved()
        return work

    async def look(self, ops: LoopOps) -> Work:
        """A lane's look at the ledger: its own read while busy, the supervisor's while idle."""
        if self.idle and self.last is not None:
            return self.last
        return self.saw(await ops.work())

    async def pause(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        await _pause(stop, self.idle_s if self.idle else self.busy_s, wake)


async def drive(ops: LoopOps, options: PipelineOptions, *, clock_sync_every_s: float = 0.5) -> Work:
    """Run the loop until every number of the run is final; return the last look at the ledger.

    Three lanes run at once. The completion lane submits matched codes as they arrive; the
    initiation lane keeps up to `max_in_flight` verifications live, a batch at a time; the
    supervisor follows the clock, expires and re-queues, reports progress and decides when the
    run is over. The two API lanes touch different numbers, the account's limiter serves
    completions first, and while one lane does its ledger bookkeeping the other keeps the limiter
    busy: no lane waits for the other's batch to end. When nothing moves for a while, the run
    only waits (`Pace`).
    """
    stop = asyncio.Event()
    last: list[Work] = []
    pace = Pace(options)

    async def survive(lane: str, one_round: Callable[[], Awaitable[bool]]) -> None:
        """Run a lane's rounds until one says it is done or the run stops. A round that meets a
        passing fault (a database error: locked, a dropped connection; a file write) is tried
        again after a short pause, so one fault does not abandon the run's live verifications;
        `ROUND_FAILURES` in a row, or any other error, ends the loop (the reports follow)."""
        failures = 0
        while not stop.is_set():
            try:
                if await one_round():
                    return
                failures = 0
            except PASSING_FAULTS as exc:
                failures += 1
                if failures >= ROUND_FAILURES:
                    raise
                log.warning(
                    "%s: a round failed (%d in a row), trying again: %s",
                    lane,
                    failures,
                    describe_failure(exc),
                )
                await _pause(stop, min(5.0, options.poll_interval_s * 2**failures))

    # Set when completions free room under `max_in_flight`: the initiation lane, asleep because
    # the run was full, fills it at once instead of at its next poll (issue 14: with instant
    # replies the run's throughput is max_in_flight / the time a slot stays taken, and half a
    # poll interval of a full lane's sleep was a third of that time).
    room_freed = pace.wake_event()
    # Set when an initiation batch is recorded while codes come back faster than the completion
    # lane polls (a full batch of them within two poll intervals): that batch's codes are mostly
    # in by then, and the lane completes them now rather than at its next poll. Codes that come
    # back slower (people, a real API's pace) keep the poll's batching.
    codes_back = pace.wake_event()
    completed: deque[tuple[float, int]] = deque()  # (when, how many) of recent completion rounds

    def codes_flowing() -> bool:
        horizon = time.monotonic() - 2 * options.poll_interval_s
        while completed and completed[0][0] < horizon:
            completed.popleft()
        return sum(n for _, n in completed) >= options.batch_size

    async def completion_round(wake: asyncio.Event) -> bool:
        wake.clear()  # a change seen from here on ends this round's pause at once
        work = await pace.look(ops)
        done = await ops.complete() if work.new_messages else StepResult()
        if done:
            pace.moved()
            room_freed.set()
            completed.append((time.monotonic(), done.attempted))
            codes_flowing()  # drops what is older than its window: an hour of rounds keeps none
        if done.attempted < options.batch_size:
            # Not a full batch: let codes gather for a moment (one task run per batch, not
            # per code); a 15-minute window does not miss a fraction of a second.
            await pace.pause(stop, wake)
        return False

    async def initiation_round(wake: asyncio.Event) -> bool:
        wake.clear()
        work = await pace.look(ops)
        room = options.max_in_flight - work.live
        started = work.queued and room > 0 and await ops.initiate(min(room, options.batch_size))
        if started:
            pace.moved()
            if codes_flowing():
                codes_back.set()
        else:
            await pace.pause(stop, wake)
        return False

    last_sync = time.monotonic()

    async def supervisor_round(wake: asyncio.Event) -> bool:
        nonlocal last_sync
        wake.clear()
        if time.monotonic() - last_sync >= clock_sync_every_s:
            await ops.sync_clock()
            last_sync = time.monotonic()
        work = pace.saw(await ops.work())
        if work.due and await ops.expire():
            pace.moved()
            work = pace.saw(await ops.work())
        await ops.progress(work)
        if work.finished:
            last.append(work)
            stop.set()
            return True
        if not work.queued and not work.new_messages:
            await ops.idle(work)
        await pace.pause(stop, wake)
        return False

    async def completion_lane() -> None:
        await survive("completion lane", lambda: completion_round(codes_back))

    async def initiation_lane() -> None:
        await survive("initiation lane", lambda: initiation_round(room_freed))

    async def supervisor() -> None:
        wake = pace.wake_event()
        await survive("supervisor", lambda: supervisor_round(wake))

    # Follow the clock before any lane claims: a claim stamps each window from this clock, and
    # one stamped from a stale reading (a test's sandbox clock moved while the run listed the
    # account) would look ended to the supervisor's first look after its sync, which re-queues
    # the number while the OTP its call is sending is live.
    await ops.sync_clock()
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
