"""The loop's order and caps, on a fake world (no Prefect, no database, no HTTP)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from callerid.pipeline.options import PipelineOptions
from callerid.pipeline.runner import Work, drive
from callerid.pipeline.session import StepResult


class FakeWorld:
    """Numbers move queued -> live -> (a reply arrives one round later) -> final."""

    def __init__(self, numbers: int, *, silent: int = 0) -> None:
        self.queued = numbers
        self.live: list[int] = []  # rounds each live verification has waited
        self.silent_live = 0
        self.silent_left = silent
        self.final = 0
        self.calls: list[str] = []
        self.max_live_seen = 0
        self.idle_rounds = 0
        self.clock_syncs = 0

    def work(self) -> Work:
        due = self.silent_live if self.idle_rounds >= 2 else 0
        return Work(
            new_messages=sum(1 for age in self.live if age >= 1),
            queued=self.queued,
            live=len(self.live) + self.silent_live,
            due=due,
            pending=self.queued + len(self.live) + self.silent_live,
        )


class FakeOps:
    def __init__(self, world: FakeWorld) -> None:
        self.w = world

    async def sync_clock(self) -> None:
        self.w.clock_syncs += 1

    async def work(self) -> Work:
        await asyncio.sleep(0)  # like the real one: a thread hop
        return self.w.work()

    async def complete(self) -> StepResult:
        self.w.calls.append("complete")
        done = [age for age in self.w.live if age >= 1]
        self.w.live = [age for age in self.w.live if age < 1]
        self.w.final += len(done)
        return StepResult(len(done))

    async def expire(self) -> StepResult:
        self.w.calls.append("expire")
        n, self.w.silent_live = self.w.silent_live, 0
        self.w.final += n
        return StepResult(n)

    async def initiate(self, limit: int) -> StepResult:
        self.w.calls.append(f"initiate:{limit}")
        n = min(limit, self.w.queued)
        self.w.queued -= n
        silent = min(n, self.w.silent_left)
        self.w.silent_left -= silent
        self.w.silent_live += silent
        self.w.live.extend([0] * (n - silent))
        return StepResult(n)

    async def progress(self, work: Work) -> None:
        self.w.live = [age + 1 for age in self.w.live]
        self.w.max_live_seen = max(self.w.max_live_seen, work.live)

    async def idle(self, work: Work) -> None:
        self.w.idle_rounds += 1


def _run(world: FakeWorld, **options: object) -> Work:
    opts = PipelineOptions(poll_interval_s=0.001, **options)  # type: ignore[arg-type]
    return asyncio.run(drive(FakeOps(world), opts, clock_sync_every_s=0.0))


def test_every_number_ends_final_within_the_in_flight_cap_and_batch_size() -> None:
    world = FakeWorld(95)
    last = _run(world, max_in_flight=30, batch_size=20)
    assert last.finished and world.final == 95
    assert world.max_live_seen <= 30
    sizes = [int(c.split(":")[1]) for c in world.calls if c.startswith("initiate")]
    assert max(sizes) <= 20


def test_completions_go_on_while_a_batch_is_being_initiated() -> None:
    world = FakeWorld(60)
    _run(world, max_in_flight=20, batch_size=10)
    assert world.final == 60
    assert "complete" in world.calls and any(c.startswith("initiate") for c in world.calls)


def test_a_failing_step_stops_the_run_instead_of_hanging() -> None:
    class Broken(FakeOps):
        async def initiate(self, limit: int) -> StepResult:
            raise RuntimeError("bad credentials")

    opts = PipelineOptions(poll_interval_s=0.001)
    with pytest.raises(RuntimeError, match="bad credentials"):
        asyncio.run(drive(Broken(FakeWorld(3)), opts, clock_sync_every_s=0.0))


def test_waiting_numbers_cost_polls_not_steps_until_their_window_ends() -> None:
    world = FakeWorld(5, silent=5)
    last = _run(world, max_in_flight=10, batch_size=10)
    assert last.finished
    assert world.calls.count("initiate:10") == 1
    assert world.calls.count("expire") == 1  # only once the fake window had ended
    assert world.idle_rounds >= 2 and world.clock_syncs >= world.idle_rounds


def test_the_clock_is_followed_before_the_first_claim() -> None:
    """A claim stamps its windows from the run's clock; a claim made while the first sync is
    still on its way (a sandbox clock moved during the listing) would stamp windows that look
    ended at the next look, and the supervisor would re-queue numbers whose OTP is live."""

    class SlowSync(FakeOps):
        async def sync_clock(self) -> None:
            await asyncio.sleep(0.02)  # an HTTP read of the sandbox's clock
            self.w.calls.append("synced")

    world = FakeWorld(5)
    opts = PipelineOptions(poll_interval_s=0.001, max_in_flight=10, batch_size=10)
    asyncio.run(drive(SlowSync(world), opts, clock_sync_every_s=0.0))
    assert world.final == 5
    assert world.calls[0] == "synced", world.calls[:3]


class FlakyLedger(FakeOps):
    """`complete` meets a database error `fail` times in a row, then works."""

    def __init__(self, world: FakeWorld, fail: int) -> None:
        super().__init__(world)
        self.fail = fail

    async def complete(self) -> StepResult:
        if self.fail:
            self.fail -= 1
            raise OperationalError("UPDATE inbox_messages", {}, Exception("database is locked"))
        return await super().complete()


def test_a_passing_database_fault_in_a_lane_does_not_abandon_the_run() -> None:
    world = FakeWorld(20)
    opts = PipelineOptions(poll_interval_s=0.001, max_in_flight=10, batch_size=10)
    last = asyncio.run(drive(FlakyLedger(world, fail=3), opts, clock_sync_every_s=0.0))
    assert last.finished and world.final == 20


def test_a_fault_that_keeps_coming_ends_the_loop() -> None:
    opts = PipelineOptions(poll_interval_s=0.001, max_in_flight=10, batch_size=10)
    with pytest.raises(OperationalError, match="database is locked"):
        asyncio.run(drive(FlakyLedger(FakeWorld(20), fail=100), opts, clock_sync_every_s=0.0))


class LaneCountingOps(FakeOps):
    """Counts the looks at the ledger each lane makes itself."""

    def __init__(self, world: FakeWorld) -> None:
        super().__init__(world)
        self.reads: dict[str, int] = {}

    async def work(self) -> Work:
        task = asyncio.current_task()
        lane = task.get_coro().__name__ if task is not None else "?"  # type: ignore[union-attr]
        self.reads[lane] = self.reads.get(lane, 0) + 1
        return await super().work()


def test_a_run_that_only_waits_is_looked_at_by_the_supervisor_alone() -> None:
    """Idle (here from the first look on): the API lanes act on the supervisor's looks and wake
    when it sees a change, so every number still ends final, initiated and completed, while the
    lanes' own reads stop after their first."""
    world = FakeWorld(40, silent=3)
    ops = LaneCountingOps(world)
    opts = PipelineOptions(
        poll_interval_s=0.001, idle_after_s=0.0, idle_poll_s=0.001, max_in_flight=10, batch_size=5
    )
    last = asyncio.run(drive(ops, opts, clock_sync_every_s=0.0))
    assert last.finished and world.final == 40
    assert "complete" in world.calls and world.calls.count("expire") == 1
    assert ops.reads.get("completion_lane", 0) <= 1 and ops.reads.get("initiation_lane", 0) <= 1
    assert ops.reads["supervisor"] > 2


def test_a_busy_run_keeps_every_lane_looking_for_itself() -> None:
    world = FakeWorld(40)
    ops = LaneCountingOps(world)
    opts = PipelineOptions(poll_interval_s=0.001, max_in_flight=10, batch_size=5)
    assert asyncio.run(drive(ops, opts, clock_sync_every_s=0.0)).finished
    assert ops.reads["completion_lane"] > 1 and ops.reads["initiation_lane"] > 1


def test_room_freed_by_completions_is_filled_at_once_not_at_the_next_poll() -> None:
    """A full run (live == max_in_flight): the initiation lane sleeps until completions free
    room, then initiates at once (issue 14: sleeping out its poll interval cost a third of each
    slot's time with instant replies). The run starts full; with a 10-minute poll interval, the
    next batch follows the first completion without waiting for any poll."""

    class InstantReplies(FakeOps):
        def __init__(self, world: FakeWorld) -> None:
            super().__init__(world)
            self.next_batch = asyncio.Event()

        async def work(self) -> Work:
            await asyncio.sleep(0)
            work = self.w.work()  # every live number's code is already in
            return Work(len(self.w.live), work.queued, work.live, work.due, work.pending)

        async def complete(self) -> StepResult:
            for _ in range(20):  # the API calls: the initiation lane looks, finds no room, sleeps
                await asyncio.sleep(0)
            self.w.calls.append("complete")
            done, self.w.live = len(self.w.live), []
            self.w.final += done
            return StepResult(done)

        async def initiate(self, limit: int) -> StepResult:
            result = await super().initiate(limit)
            self.next_batch.set()
            return result

    async def go() -> list[str]:
        world = FakeWorld(15)
        world.queued, world.live = 10, [0] * 5  # full: 5 live of max_in_flight 5
        ops = InstantReplies(world)
        opts = PipelineOptions(poll_interval_s=600, max_in_flight=5, batch_size=5)
        loop = asyncio.create_task(drive(ops, opts, clock_sync_every_s=0.0))
        try:
            await asyncio.wait_for(ops.next_batch.wait(), 30)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
        return world.calls

    calls = asyncio.run(go())
    assert calls[:2] == ["complete", "initiate:5"]


class _SlowInitiations(FakeOps):
    """Codes are back the moment a number is initiated; an initiation takes a few loop turns
    (its API calls), so the completion lane has looked, found nothing, and is asleep."""

    def __init__(self, world: FakeWorld) -> None:
        super().__init__(world)
        self.initiated = asyncio.Event()

    async def work(self) -> Work:
        await asyncio.sleep(0)
        work = self.w.work()
        return Work(len(self.w.live), work.queued, work.live, work.due, work.pending)

    async def complete(self) -> StepResult:
        self.w.calls.append("complete")
        done, self.w.live = len(self.w.live), []
        self.w.final += done
        return StepResult(done)

    async def initiate(self, limit: int) -> StepResult:
        for _ in range(20):
            await asyncio.sleep(0)
        result = await super().initiate(limit)
        self.initiated.set()
        return result


def _codes_back_run(batch_size: int) -> list[str]:
    async def go() -> list[str]:
        world = FakeWorld(15)
        world.queued, world.live = 10, [0] * 5  # full: 5 live of max_in_flight 5, codes in
        ops = _SlowInitiations(world)
        opts = PipelineOptions(poll_interval_s=600, max_in_flight=5, batch_size=batch_size)
        loop = asyncio.create_task(drive(ops, opts, clock_sync_every_s=0.0))
        try:
            await asyncio.wait_for(ops.initiated.wait(), 30)
            for _ in range(20):
                if world.calls.count("complete") == 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            loop.cancel()
            with pytest.raises(asyncio.CancelledError):
                await loop
        return world.calls

    return asyncio.run(go())


def test_codes_coming_back_fast_are_completed_after_each_initiation_not_at_the_next_poll() -> None:
    """A full batch completed within two polls: the codes come back faster than the lane
    polls, so an initiation batch wakes the completion lane (issue 14: with instant replies its
    codes waited half a poll). A 10-minute poll interval: the second completion follows the
    initiation at once."""
    calls = _codes_back_run(batch_size=5)
    assert calls[:3] == ["complete", "initiate:5", "complete"]


def test_codes_coming_back_slowly_keep_the_polls_batching() -> None:
    """Fewer codes than a batch within two polls (people, a real API's pace): an initiation does
    not wake the completion lane, which gathers codes until its poll."""
    calls = _codes_back_run(batch_size=6)
    assert calls[:2] == ["complete", "initiate:5"]
    assert calls.count("complete") == 1
