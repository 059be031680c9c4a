"""The run's reports: results.csv (every input row), rejects.csv, and the summary/failure tables.

Everything here is built from the ingest result and the ledger's outcomes; nothing here carries an
OTP code or a token (the ledger outcome has neither).
"""

from __future__ import annotations

import csv
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callerid.ledger.models import NumberStatus
from callerid.pipeline.options import RunPaths

if TYPE_CHECKING:
    from callerid.ingest import IngestResult
    from callerid.ingest.models import AcceptedRow, RejectedRow

REJECTED = "rejected"
RESULT_COLUMNS = (
    "line",
    "raw",
    "phone_number",
    "alias",
    "channel",
    "status",
    "verification_uuid",
    "attempts",
    "reason",
)
REJECT_COLUMNS = ("line", "raw", "reason", "message", "duplicate_of_line")
_OK = frozenset({NumberStatus.VERIFIED, NumberStatus.ALREADY_VERIFIED})


@dataclass(frozen=True, slots=True)
class NumberOutcome:
    """Where one number stands in the ledger at the end of a run."""

    e164: str
    status: str
    verification_uuid: str | None = None
    attempts: int = 0
    wrong_otps: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in _OK

    def reason(self) -> str:
        if self.status == NumberStatus.VERIFIED:
            return "verified"
        if self.status == NumberStatus.ALREADY_VERIFIED:
            return "already a verified caller ID of the account"
        if self.last_error:
            return self.last_error
        if self.status == NumberStatus.FAILED:
            return f"not verified after {self.attempts} attempt(s)"
        return f"not final: {self.status}"


def reject_reason(rej: RejectedRow) -> str:
    """A rejected row's reason as the reports give it (the line it duplicates, or the detail)."""
    reason = str(rej.reason)
    if rej.duplicate_of_line is not None:
        return f"{reason}: same number as line {rej.duplicate_of_line}"
    if rej.message:
        return f"{reason}: {rej.message}"
    return reason


def iter_result_rows(
    ingest: IngestResult, outcomes: Mapping[str, NumberOutcome], missing: str = "not in ledger"
) -> Iterator[dict[str, Any]]:
    """One row per input row, in file order: accepted rows with their outcome, rejects as such.
    Made one at a time (100,000 rows held at once cost ~70 MB at the end of a large run)."""
    accepted = (
        {
            "line": acc.line,
            "raw": acc.raw,
            "phone_number": acc.e164,
            "alias": acc.alias or "",
            "channel": str(acc.channel),
            "status": out.status,
            "verification_uuid": out.verification_uuid or "",
            "attempts": out.attempts,
            "reason": out.reason(),
        }
        for acc in sorted(ingest.accepted, key=_line)
        for out in [
            outcomes.get(acc.e164) or NumberOutcome(acc.e164, "unknown", last_error=missing)
        ]
    )
    rejected = (
        {
            "line": rej.line,
            "raw": rej.raw,
            "phone_number": "",
            "alias": "",
            "channel": "",
            "status": REJECTED,
            "verification_uuid": "",
            "attempts": 0,
            "reason": reject_reason(rej),
        }
        for rej in sorted(ingest.rejected, key=_line)
    )
    return heapq.merge(accepted, rejected, key=lambda row: int(row["line"]))


def _line(row: AcceptedRow | RejectedRow) -> int:
    return int(row.line)


def result_rows(
    ingest: IngestResult, outcomes: Mapping[str, NumberOutcome]
) -> list[dict[str, Any]]:
    """`iter_result_rows` as a list."""
    return list(iter_result_rows(ingest, outcomes))


def _write_csv(path: Path, columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> None:
    from callerid.ingest.safety import safe_cell  # people open these in a spreadsheet

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(
            {k: safe_cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows
        )


def write_run_reports(
    paths: RunPaths,
    ingest: IngestResult,
    outcomes: Mapping[str, NumberOutcome],
    missing: str = "not in ledger",
) -> dict[str, int]:
    """Write results.csv and rejects.csv, a row at a time; return the rows' counts by status.
    An accepted number without an outcome is `unknown`, with `missing` as its reason."""
    counts: Counter[str] = Counter()

    def counted(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            counts[str(row["status"])] += 1
            yield row

    _write_csv(
        paths.results_csv, RESULT_COLUMNS, counted(iter_result_rows(ingest, outcomes, missing))
    )
    _write_csv(
        paths.rejects_csv,
        REJECT_COLUMNS,
        (
            {
                "line": r.line,
                "raw": r.raw,
                "reason": str(r.reason),
                "message": r.message or "",
                "duplicate_of_line": "" if r.duplicate_of_line is None else r.duplicate_of_line,
            }
            for r in ingest.rejected
        ),
    )
    return dict(sorted(counts.items()))


def failure_rows(outcomes: Mapping[str, NumberOutcome]) -> list[dict[str, Any]]:
    """The numbers that did not verify, with why: the table artifact."""
    return [
        {
            "phone_number": o.e164,
            "status": o.status,
            "attempts": o.attempts,
            "wrong_otps": o.wrong_otps,
            "reason": o.reason(),
        }
        for o in sorted(outcomes.values(), key=lambda o: o.e164)
        if not o.ok
    ]


def status_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(str(r["status"]) for r in rows).items()))


def summary_markdown(
    *,
    run_id: str,
    csv_path: str,
    counts: Mapping[str, int],
    paths: RunPaths,
    sandbox: bool,
    elapsed_s: float,
    incomplete: Iterable[str] = (),
) -> str:
    """The markdown artifact (no indentation: Prefect renders indented lines as code)."""
    why = list(incomplete)
    lines = [
        f"# Bulk verification `{run_id}`" + (" — **incomplete**" if why else ""),
        "",
        f"Input: `{csv_path}`" + (" — against the local **sandbox**" if sandbox else ""),
        f"Elapsed: {elapsed_s:.1f} s (the flow run, from reading the file to these reports;"
        " Prefect's start-up is not included)",
        "",
        "| status | rows |",
        "| --- | ---: |",
        *(f"| {status} | {n} |" for status, n in counts.items()),
        f"| **total** | {sum(counts.values())} |",
        "",
        f"Reports: `{paths.results_csv}`, `{paths.rejects_csv}`",
    ]
    if why:
        lines += [
            "",
            "## Incomplete: rerun with the same file to finish",
            "",
            "These steps failed after their retries; every number is left in the state the "
            "ledger records, and the statuses above are what was known when the run ended.",
            "",
            *(f"- {reason}" for reason in why),
        ]
    return "\n".join(lines) + "\n"
