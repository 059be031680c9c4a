"""What a run is asked to do: the options of `bulk_verify`, as one frozen value passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Channel = Literal["sms", "call", "auto"]  # auto: fixed lines by call, the rest by SMS

# Plivo's list endpoint returns at most 20 caller IDs a page (plivo-api.md §1.2).
LIST_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Options of one run. Defaults suit the documented 300 requests / 5 s account limit."""

    default_region: str = "US"
    channel: Channel = "auto"
    subaccount: str | None = None
    encoding: str | None = None
    sheet: str | None = None  # a spreadsheet's sheet (default: the first)
    owner: str | None = None  # the owner email address for rows without one
    max_attempts: int = 2
    # Live verifications at once: enough to keep the rate limit busy, few enough that every
    # OTP that arrives can still be completed inside its 15-minute window.
    max_in_flight: int = 300
    # Numbers per Prefect task run: prefect-notes §0.2 (never one task per number).
    batch_size: int = 100
    # How long the loop sleeps when there is nothing to do but wait for OTPs.
    poll_interval_s: float = 0.5
    # Once nothing has moved for `idle_after_s` (the same look at the ledger, no step did
    # anything), the run only waits: one look every `idle_poll_s`, whatever the run's size, until
    # something moves (a code arriving waits at most that long more).
    idle_after_s: float = 5.0
    idle_poll_s: float = 1.0
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.channel not in ("sms", "call", "auto"):
            raise ValueError(f"channel must be 'sms', 'call' or 'auto', not {self.channel!r}")
        if self.poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        if self.idle_after_s < 0 or self.idle_poll_s <= 0:
            raise ValueError("idle_after_s must be >= 0 and idle_poll_s positive")


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where one run writes its reports: `<output_dir>/runs/<run_id>/`."""

    root: Path

    @classmethod
    def for_run(cls, output_dir: Path, run_id: str) -> RunPaths:
        return cls(root=Path(output_dir) / "runs" / run_id)

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def rejects_csv(self) -> Path:
        return self.root / "rejects.csv"

    @property
    def summary_md(self) -> Path:
        return self.root / "summary.md"

    @property
    def progress_json(self) -> Path:
        return self.root / "progress.json"

    @property
    def plan_json(self) -> Path:
        return self.root / "plan.json"

    @property
    def run_log(self) -> Path:
        """`callerid run`'s log: INFO and up, with every traceback the terminal does not show."""
        return self.root / "run.log"

    @property
    def flow_run_json(self) -> Path:
        """The Prefect flow run behind this run (id, name, UI link), written when it starts."""
        return self.root / "flow-run.json"
