"""The desired state: a CSV in the import format, read by the same ingest as an import.

A desired-state file with rejected rows is still usable for drift (the accepted rows say what
they say), but not for pruning: a number on a rejected row would look "unknown" and be deleted.
So `prune` with such a file is refused with the rows named (`DesiredStateError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

from callerid.ingest import IngestResult, RejectReason, ingest_csv
from callerid.reconcile.models import Desired

_REPORTED_LINES = 10


class DesiredStateError(ValueError):
    """The desired-state CSV cannot be used as asked; the message says which rows and why."""


@dataclass(frozen=True, slots=True)
class DesiredState:
    entries: tuple[Desired, ...]
    rejected_lines: tuple[int, ...]  # rejected rows other than duplicates of accepted ones
    path: str


def from_ingest(result: IngestResult, path: str) -> DesiredState:
    entries = tuple(
        Desired(
            phone_number=row.e164,
            alias=row.alias,
            subaccount=row.subaccount,
            country=row.region,
        )
        for row in result.accepted
    )
    rejected = tuple(r.line for r in result.rejected if r.reason is not RejectReason.DUPLICATE)
    return DesiredState(entries=entries, rejected_lines=rejected, path=path)


def load_desired(
    path: str | PathLike[str],
    *,
    default_region: str = "US",
    encoding: str | None = None,
    prune: bool = False,
) -> DesiredState:
    """Read the CSV; raise `DesiredStateError` if pruning against a file with rejected rows."""
    state = from_ingest(
        ingest_csv(path, default_region=default_region, encoding=encoding), str(path)
    )
    if prune and state.rejected_lines:
        lines = ", ".join(str(n) for n in state.rejected_lines[:_REPORTED_LINES])
        more = len(state.rejected_lines) - _REPORTED_LINES
        raise DesiredStateError(
            f"{path}: {len(state.rejected_lines)} row(s) rejected (lines {lines}"
            f"{f' and {more} more' if more > 0 else ''}); refusing to prune against an "
            "incomplete desired state: fix the rows or run without prune"
        )
    return state
