"""`Pipeline`: what one run talks to (ledger, Plivo client, clock), passed to every step.

The steps themselves are functions in `steps.py` / `account.py`; `flows/` and `tasks/` wrap them
and `runner.drive` sequences the loop (the same code with or without Prefect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from callerid.clock import Clock
from callerid.pipeline.options import PipelineOptions, RunPaths

if TYPE_CHECKING:
    from callerid.ledger import Ledger
    from callerid.plivo import PlivoClient


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one batch step did (counts only: no codes, no tokens)."""

    attempted: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.attempted > 0


class Pipeline:
    """One run against one account. Not thread-safe: one event loop drives it.

    A plain class on purpose (not a dataclass): Prefect walks dataclass task arguments looking for
    futures, and this object holds sockets and a database engine.
    """

    def __init__(
        self,
        *,
        account: str,
        ledger: Ledger,
        client: PlivoClient,
        clock: Clock,
        run_id: str,
        options: PipelineOptions,
        paths: RunPaths,
        sandbox_url: str | None = None,
        clock_sync: Callable[[], Awaitable[object]] | None = None,
        access_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.account = account
        self.ledger = ledger
        self.client = client
        self.clock = clock
        self.run_id = run_id
        self.options = options
        self.paths = paths
        self.sandbox_url = sandbox_url
        self._clock_sync = clock_sync
        self._access_check = access_check
        self.e164s: list[str] = []  # this run's numbers, in file order (set by register)
        self.listed: set[str] | None = None  # the account's caller IDs, as last listed
        # Numbers whose completion this process has in flight: recovery leaves them alone.
        self.completing: set[str] = set()
        self.csv_path: str = ""
        # Where the owners' code page is served (the in-process receiver's base URL), if here.
        self.code_page_base: str | None = None
        self.shared_look: object | None = None  # the loop's last look at the ledger (ledger_reads)

    def __repr__(self) -> str:
        return f"Pipeline(account={self.account!r}, run_id={self.run_id!r})"

    @property
    def uses_sandbox(self) -> bool:
        return self.sandbox_url is not None

    async def check_access(self) -> None:
        """One cheap call to Plivo before anything is registered: wrong credentials or URL fail
        here, in one line (`environment.PlivoAccessError`). No-op on the in-process sandbox."""
        if self._access_check is not None:
            await self._access_check()

    async def sync_clock(self) -> None:
        """Follow the sandbox's clock (no-op against real Plivo)."""
        if self._clock_sync is not None:
            await self._clock_sync()
