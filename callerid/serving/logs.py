"""Rate-limited error logs: a repeated error is logged a few times a minute, then counted.

Under a flood (descriptors exhausted, a storm of malformed requests) the same error repeats
thousands of times a second; logging each one (with its traceback) fills the disk and hides
everything else. The first `burst` records of a kind in each window pass; the rest are counted,
and the next one that passes says how many were left out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Kind:
    window_start: float
    passed: int = 0
    suppressed: int = 0


class RepeatLimiter:
    """Decides, per kind of message, whether one more may be logged."""

    def __init__(
        self,
        burst: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 1024,
    ) -> None:
        self.burst, self.window_s, self.clock, self.max_kinds = burst, window_s, clock, max_kinds
        self._kinds: dict[Hashable, _Kind] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable) -> int | None:
        """None: leave this one out. Otherwise log it, noting the returned count left out before."""
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is None or now - kind.window_start >= self.window_s:
                if kind is None and len(self._kinds) >= self.max_kinds:
                    self._kinds.pop(next(iter(self._kinds)))  # forget the oldest kind
                suppressed = kind.suppressed if kind else 0
                self._kinds[key] = _Kind(window_start=now, passed=1)
                return suppressed
            if kind.passed < self.burst:
                kind.passed += 1
                return 0
            kind.suppressed += 1
            return None


def _note(message: str, suppressed: int) -> str:
    return f"{message} [{suppressed} more like this left out]" if suppressed else message


class RepeatedLogFilter(logging.Filter):
    """A logging filter: records at `min_level` and above are rate-limited per kind, where a kind
    is the logger, the level, the unformatted message and the exception's type."""

    def __init__(self, limiter: RepeatLimiter, min_level: int = logging.WARNING) -> None:
        super().__init__()
        self.limiter, self.min_level = limiter, min_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level:
            return True
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        suppressed = self.limiter.allow((record.name, record.levelno, str(record.msg), error))
        if suppressed is None:
            return False
        if suppressed:  # the note has no '%': safe whether or not the record has args
            record.msg = _note(str(record.msg), suppressed)
        return True


def loop_exception_handler(
    limiter: RepeatLimiter,
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """For `loop.set_exception_handler`: asyncio's own errors (an accept failing with 'Too many
    open files' is retried in a tight loop), rate-limited by message and exception type; the
    message text, not the whole formatted record, because asyncio appends each socket's details."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        key = ("asyncio", str(context.get("message")), type(exception).__name__)
        suppressed = limiter.allow(key)
        if suppressed is None:
            return
        if suppressed:
            context = {**context, "message": _note(str(context.get("message")), suppressed)}
        loop.default_exception_handler(context)

    return handle
