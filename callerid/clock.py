"""Injectable clocks.

Everything that reasons about the 15-minute OTP window asks a `Clock` for the time, never
`datetime.now()` directly, so that tests (and the sandbox) can move time without waiting.

`OffsetClock` is wall-clock time plus an offset that can only grow: the sandbox keeps one and
`POST /_sandbox/clock {"advance_s": N}` advances it; a pipeline running against the sandbox keeps
its own and copies the sandbox's offset (`GET /_sandbox/clock` -> {"now": ISO, "offset_s": N}), so
the pipeline's deadlines and the sandbox's window move together.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Wall-clock time shifted by an offset (seconds) that tests advance."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self._offset_s = float(offset_s)
        self._lock = threading.Lock()

    @property
    def offset_s(self) -> float:
        return self._offset_s

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset_s)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        with self._lock:
            self._offset_s += seconds

    def set_offset(self, offset_s: float) -> None:
        """Follow another clock's offset (never moves backwards)."""
        with self._lock:
            self._offset_s = max(self._offset_s, float(offset_s))


class ManualClock:
    """A clock that stands still until told to move: for unit tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock only moves forward")
        self._now += timedelta(seconds=seconds)
