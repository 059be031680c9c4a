"""Progress of one run: counts by status of the run's own numbers, kept in a small JSON file.

The file (`out/runs/<run-id>/progress.json`) is how the CLI draws its progress bars while the flow
runs: it works whether the flow runs in the same process or elsewhere, and it needs no Prefect.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from callerid.ledger.models import FINAL_STATUSES, NumberStatus


@dataclass(frozen=True, slots=True)
class Progress:
    total: int
    counts: dict[str, int] = field(default_factory=dict)
    phase: str = "starting"
    done: bool = False

    @property
    def final(self) -> int:
        return sum(n for status, n in self.counts.items() if status in FINAL_STATUSES)

    @property
    def verified(self) -> int:
        return self.counts.get(NumberStatus.VERIFIED, 0) + self.counts.get(
            NumberStatus.ALREADY_VERIFIED, 0
        )

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.final / self.total

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "final": self.final, "verified": self.verified}

    @classmethod
    def from_statuses(
        cls, statuses: Mapping[str, str], *, phase: str, done: bool = False
    ) -> Progress:
        return cls(
            total=len(statuses), counts=dict(Counter(statuses.values())), phase=phase, done=done
        )


def write_progress(path: Path, progress: Progress) -> None:
    """Replace the file atomically, so a reader never sees half a JSON document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(progress.as_dict(), sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def read_progress(path: Path) -> Progress | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return Progress(
        total=int(data.get("total", 0)),
        counts={str(k): int(v) for k, v in dict(data.get("counts", {})).items()},
        phase=str(data.get("phase", "")),
        done=bool(data.get("done", False)),
    )
