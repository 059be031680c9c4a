"""The ledger's errors. Each holds plain values only and survives a pickle round trip (Prefect
stores the exceptions of failed tasks).

    LedgerError
     ├── IllegalTransitionError   a move the state machine does not allow
     ├── ConcurrentUpdateError    another process changed a row between our read and our write
     ├── InvalidRecordError       a record given to `upsert_many` lacks what a number needs
     └── RunNotFoundError         `finish_run` for a run that was never started
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the ledger's errors."""


class IllegalTransitionError(LedgerError):
    def __init__(self, e164: str, from_status: str, to_status: str) -> None:
        super().__init__(e164, from_status, to_status)
        self.e164 = e164
        self.from_status = from_status
        self.to_status = to_status

    def __str__(self) -> str:
        return f"{self.e164}: {self.from_status} -> {self.to_status} is not allowed"


class ConcurrentUpdateError(LedgerError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return f"a number changed under us (another process?): {self.detail}; nothing was saved"


class InvalidRecordError(LedgerError):
    def __init__(self, index: int, problem: str) -> None:
        super().__init__(index, problem)
        self.index = index
        self.problem = problem

    def __str__(self) -> str:
        return f"record {self.index}: {self.problem}"


class RunNotFoundError(LedgerError):
    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"no run {self.run_id!r} in the ledger"
