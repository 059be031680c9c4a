"""The serving limits without a socket: the connection cap against the descriptor limit, and the
rate limit on repeated error logs (a flood logs a few lines a minute, then counts)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from callerid.serving import RepeatedLogFilter, RepeatLimiter, ServerLimits, connection_cap
from callerid.serving.logs import loop_exception_handler


@pytest.mark.parametrize(
    ("fd_limit", "expected"),
    [
        (None, 1000),  # no descriptor limit: the configured cap
        (1024, 384),  # the usual default: (1024 - 128 spare - 128 reserve) / 2
        (20000, 1000),
        (1 << 20, 1000),
        (200, 8),  # absurdly low: still serves a few
    ],
)
def test_connection_cap_stays_well_below_the_descriptor_limit(
    fd_limit: int | None, expected: int
) -> None:
    assert connection_cap(ServerLimits(), fd_limit) == expected


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        ServerLimits(body_timeout_s=0)
    with pytest.raises(ValueError):
        ServerLimits(max_connections=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limiter_passes_a_burst_per_window_then_counts() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(burst=3, window_s=60, clock=clock)
    assert [limiter.allow("emfile") for _ in range(5)] == [0, 0, 0, None, None]
    assert limiter.allow("other") == 0  # kinds are counted apart
    clock.now = 59.9
    assert limiter.allow("emfile") is None
    clock.now = 60.0
    assert limiter.allow("emfile") == 3  # the next window's first says how many were left out
    assert limiter.allow("emfile") == 0


def test_limiter_forgets_old_kinds_beyond_its_size() -> None:
    limiter = RepeatLimiter(burst=1, max_kinds=10, clock=FakeClock())
    for n in range(100):
        assert limiter.allow(n) == 0
    assert len(limiter._kinds) == 10


def make_logger(name: str, limiter: RepeatLimiter) -> tuple[logging.Logger, list[str]]:
    logger = logging.getLogger(name)
    logger.propagate = False
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage() + (" +traceback" if record.exc_info else ""))

    logger.handlers = [Collect()]
    logger.filters = [RepeatedLogFilter(limiter)]
    return logger, lines


def test_filter_limits_warnings_and_errors_not_info() -> None:
    clock = FakeClock()
    logger, lines = make_logger("tests.serving.flood", RepeatLimiter(burst=2, clock=clock))
    logger.setLevel(logging.INFO)
    for n in range(10_000):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.exception("accept failed on socket %d", n)
        logger.info("request %d", n)
    errors = [line for line in lines if line.startswith("accept failed")]
    assert errors == [
        "accept failed on socket 0 +traceback",
        "accept failed on socket 1 +traceback",
    ]
    assert sum(line.startswith("request") for line in lines) == 10_000
    clock.now = 61
    logger.error("accept failed on socket %d", 5, exc_info=(OSError, OSError(24, "x"), None))
    assert lines[-1] == "accept failed on socket 5 [9998 more like this left out] +traceback"


def test_loop_errors_are_limited_by_message_not_by_socket_details() -> None:
    loop = asyncio.new_event_loop()
    handled: list[str] = []
    loop.default_exception_handler = lambda context: handled.append(context["message"])  # type: ignore[method-assign]
    try:
        handle = loop_exception_handler(RepeatLimiter(burst=2, clock=FakeClock()))
        for fd in range(1000):
            context = {
                "message": "socket.accept() out of system resource",
                "exception": OSError(24, "Too many open files"),
                "socket": f"<socket fd={fd}>",
            }
            handle(loop, context)
        handle(loop, {"message": "something else", "exception": ValueError()})
    finally:
        loop.close()
    assert handled == [
        "socket.accept() out of system resource",
        "socket.accept() out of system resource",
        "something else",
    ]
