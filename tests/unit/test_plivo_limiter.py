"""The account limiter: pure timing (table-driven), then the async queue on a fake clock.

Only time is faked: `FakeTime.sleep` moves the clock forward instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from callerid.plivo.limiter import Priority, RateLimiter, install_limiter, limiter_for
from callerid.plivo.pacing import PacingWindow

# (now, expected delay before a grant, grant?)
Step = tuple[float, float, bool]


@pytest.mark.parametrize(
    ("config", "steps"),
    [
        pytest.param(
            (3, 1.0, 0.0, None),
            [
                (0.0, 0.0, True),
                (0.0, 1 / 3, False),  # smoothing: one interval apart
                (0.5, 0.0, True),
                (0.9, 0.0, True),  # window now full: [0, 0.5, 0.9]
                (1.0, 1.2333 - 1.0, False),
                (1.3, 0.0, True),  # 0.0 left the window at 1.0
                (1.4, 0.2333, False),
            ],
            id="three-per-second",
        ),
        pytest.param(
            (10, 1.0, 0.5, 3),
            [(0.0, 0.0, True), (0.0, 0.0, True), (0.0, 0.0, True), (0.0, 0.15, False)],
            id="burst-of-three",
        ),
        pytest.param(
            (2, 1.0, 0.25, 2),
            [(0.0, 0.0, True), (0.0, 0.0, True), (1.0, 0.25, False), (1.25, 0.0, True)],
            id="margin-widens-the-window",
        ),
    ],
)
def test_pacing_window_delays(
    config: tuple[int, float, float, int | None], steps: list[Step]
) -> None:
    n, period, margin, burst = config
    window = PacingWindow(n, period, margin_s=margin, burst=burst)
    for now, delay, grant in steps:
        assert window.delay(now) == pytest.approx(delay, abs=1e-3), now
        if grant:
            window.record(now)


def test_a_request_counts_from_when_it_reached_the_wire() -> None:
    window = PacingWindow(2, 1.0, margin_s=0.0, burst=2)
    window.record(0.0)
    window.record(0.1)
    assert window.delay(1.0) == 0.0  # the grant at 0.0 has left the window
    window.move(0.0, 0.5)  # ... but that request only left at 0.5 (new connection)
    assert window.delay(1.0) == pytest.approx(0.1)  # now 0.1 is the oldest of the two
    window.move(0.1, 0.05)  # never earlier than the grant
    assert window.delay(1.0) == pytest.approx(0.1)
    window.record(1.2)  # 0.1 drops out; moving it later brings it back as the oldest kept
    window.move(0.1, 0.7)
    assert window.delay(1.3) == pytest.approx(0.7 + 1.0 - 1.3)


def test_a_429_widens_the_window_for_the_next_n_grants() -> None:
    window = PacingWindow(2, 1.0, margin_s=0.0, burst=2)
    window.record(0.0)
    window.record(0.0)
    assert window.delay(1.0) == 0.0
    window.widen()
    assert window.delay(1.0) == pytest.approx(0.02)
    for _ in range(10):
        window.widen()
    assert window.extra_s == pytest.approx(0.05)  # never more than 5% of the period
    window.record(2.0)
    window.record(2.0)
    assert window.extra_s == pytest.approx(0.03)  # one step forgotten per N grants
    for t in range(3, 9):
        window.record(float(t))
    assert window.extra_s == 0.0


def test_pacing_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        PacingWindow(0, 5.0)
    with pytest.raises(ValueError):
        PacingWindow(10, 0.0)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _fake_limiter(ft: FakeTime, n: int, period: float, **kw: object) -> RateLimiter:
    return RateLimiter(n, period, margin_s=0.0, clock=ft.clock, sleep=ft.sleep, **kw)  # type: ignore[arg-type]


async def test_grants_are_spaced_and_never_exceed_the_window() -> None:
    ft = FakeTime()
    limiter = _fake_limiter(ft, 5, 1.0, burst=1)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(ft.now)

    await asyncio.gather(*(one() for _ in range(12)))
    assert times == pytest.approx([0.2 * i for i in range(12)])
    assert limiter.granted == 12


@pytest.mark.parametrize(("n", "period", "count"), [(10, 1.0, 35), (300, 5.0, 700), (4, 0.5, 9)])
async def test_no_period_ever_holds_more_than_n(n: int, period: float, count: int) -> None:
    ft = FakeTime()
    limiter = _fake_limiter(ft, n, period)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(ft.now)

    await asyncio.gather(*(one() for _ in range(count)))
    times.sort()
    assert all(times[i + n] - times[i] >= period - 1e-9 for i in range(len(times) - n))
    # ... yet keeps the rate: the k-th grant comes about k / rate after the first
    assert times[-1] <= (count - 1) * period / n * 1.01


async def test_high_priority_waiters_go_first() -> None:
    ft = FakeTime()
    limiter = _fake_limiter(ft, 1, 1.0, burst=1)
    await limiter.acquire()
    order: list[str] = []

    async def one(name: str, priority: Priority) -> None:
        await limiter.acquire(priority)
        order.append(name)

    # the completion arrives last, while both initiations are already waiting
    await asyncio.gather(
        one("initiate-1", Priority.NORMAL),
        one("initiate-2", Priority.NORMAL),
        one("complete", Priority.HIGH),
    )
    assert order == ["complete", "initiate-1", "initiate-2"]


async def test_a_cancelled_waiter_lets_the_next_one_in() -> None:
    limiter = RateLimiter(1, 0.2, margin_s=0.0, burst=1)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.02)
    first.cancel()
    await asyncio.wait_for(second, timeout=2.0)
    assert first.cancelled() and second.done()
    assert limiter.granted == 2


def test_one_limiter_serves_several_threads_with_their_own_loops() -> None:
    limiter = RateLimiter(20, 0.5, margin_s=0.0, burst=1)
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        async def run() -> None:
            for _ in range(10):
                await limiter.acquire()
                with lock:
                    times.append(time.monotonic())

        asyncio.run(run())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(times) == 30
    times.sort()
    assert all(times[i + 20] - times[i] >= 0.5 - 0.005 for i in range(10))


async def test_slot_source_is_asked_for_blocks_before_local_spending() -> None:
    ft = FakeTime()
    asked: list[int] = []

    async def acquire_slots(n: int) -> None:
        asked.append(n)

    limiter = _fake_limiter(ft, 100, 1.0, burst=100, slot_source=acquire_slots, slot_block=10)
    await asyncio.gather(*(limiter.acquire() for _ in range(25)))
    assert asked == [10, 10, 10]
    assert limiter.granted == 25


def test_registry_gives_one_limiter_per_account() -> None:
    got: list[RateLimiter] = []
    threads = [
        threading.Thread(target=lambda: got.append(limiter_for("MAREGISTRYTEST000001")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(limiter is got[0] for limiter in got)
    assert limiter_for("MAREGISTRYTEST000001", 300, 5.0) is got[0]
    assert limiter_for("MAREGISTRYTEST000002") is not got[0]


def test_registry_first_registration_wins_whatever_the_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = limiter_for("MAREGISTRYTEST000003")  # defaults: 300/5
    with caplog.at_level(logging.WARNING, logger="callerid.plivo"):
        assert limiter_for("MAREGISTRYTEST000003", 100, 2.0) is first
    assert (first.max_requests, first.period_s) == (300, 5.0)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "MAREGISTRYTEST000003" in warning.getMessage()
    assert "300/5s" in warning.getMessage() and "100/2s" in warning.getMessage()
    caplog.clear()
    explicit = limiter_for("MAREGISTRYTEST000004", 100, 2.0)
    with caplog.at_level(logging.WARNING, logger="callerid.plivo"):
        assert limiter_for("MAREGISTRYTEST000004") is explicit  # no limits asked: no warning
        assert limiter_for("MAREGISTRYTEST000004", 100, 2.0) is explicit
    assert (explicit.max_requests, explicit.period_s) == (100, 2.0)
    assert caplog.records == []


def test_install_limiter_registers_only_when_none_is_in_force() -> None:
    mine = RateLimiter(10, 1.0)
    assert install_limiter("MAREGISTRYTEST000005", mine) is mine
    assert limiter_for("MAREGISTRYTEST000005") is mine
    later = RateLimiter(20, 1.0)
    assert install_limiter("MAREGISTRYTEST000005", later) is mine  # first registration wins
