"""Faults queued by tests (`POST /_sandbox/faults`) and taken one per matching API request.

Kinds:
* `status`: answer `status` (5xx by default 500) without processing the request.
* `drop`: close the connection without a complete response, without processing the request.
* `latency`: wait `latency_ms` before processing the request normally.
* `timeout_after_processing`: process the request (an initiate sends its OTP), then hold the
  response for `delay_s` seconds, or until the client gives up when `delay_s` is None. This is the
  client's "outcome unknown" case.

`after`: let that many matching requests through untouched before the fault starts (e.g. the
second listing of a run, not its first).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    STATUS = "status"
    DROP = "drop"
    LATENCY = "latency"
    TIMEOUT_AFTER_PROCESSING = "timeout_after_processing"


class Operation(StrEnum):
    INITIATE = "initiate"
    COMPLETE = "complete"
    GET = "get"
    LIST = "list"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    count: int = 1
    status: int = 500
    latency_ms: int = 0
    delay_s: float | None = None
    operation: Operation | None = None  # None: any operation
    after: int = 0  # matching requests let through before the fault starts

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if self.after < 0:
            raise ValueError("after must not be negative")
        if self.kind is FaultKind.STATUS and not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.latency_ms < 0 or (self.delay_s is not None and self.delay_s < 0):
            raise ValueError("latency_ms and delay_s must not be negative")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Fault:
        """Build from a JSON body; raises ValueError (with a readable message) on bad input."""
        try:
            kind = FaultKind(str(body.get("kind", "")))
        except ValueError:
            raise ValueError(f"kind must be one of {[k.value for k in FaultKind]}") from None
        operation = body.get("operation") or None
        try:
            return cls(
                kind=kind,
                count=int(body.get("count", 1)),
                status=int(body.get("status", 500)),
                latency_ms=int(body.get("latency_ms", 0)),
                delay_s=None if body.get("delay_s") is None else float(body["delay_s"]),
                operation=Operation(operation) if operation else None,
                after=int(body.get("after", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad fault: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "count": self.count,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "delay_s": self.delay_s,
            "operation": self.operation.value if self.operation else None,
            "after": self.after,
        }


class FaultQueue:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, operation: Operation) -> Fault | None:
        """The first queued fault that applies to `operation`, using up one of its count."""
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.operation in (None, operation):
                    if fault.after > 0:
                        self._faults[i] = replace(fault, after=fault.after - 1)
                        return None
                    if fault.count > 1:
                        self._faults[i] = replace(fault, count=fault.count - 1)
                    else:
                        del self._faults[i]
                    return fault
            return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
