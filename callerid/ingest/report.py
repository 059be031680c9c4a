"""The ingest's reports: `accepted.csv`, `rejects.csv` (as pandas frames too) and a text summary.

`rejects.csv` repeats each rejected row's cells under the file's own headers after `line`,
`reason`, `message` and `duplicate_of_line`, so a person can fix it and import it again.
Every cell of the input is in one of the two files. The files are neutralised against CSV
injection (`safety.safe_cell`); the frames are not.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from callerid.ingest.models import IngestResult, RejectedRow
from callerid.ingest.safety import safe_cell

if TYPE_CHECKING:
    import pandas as pd

ACCEPTED_COLUMNS = [
    "line",
    "e164",
    "national",
    "region",
    "number_type",
    "alias",
    "channel",
    "subaccount",
    "owner",
    "raw",
    "warnings",
]
# Columns that hold the input's own text (the rest is ours: numbers, enums, checked ids).
_INPUT_TEXT = ("raw", "alias", "owner")
REJECT_COLUMNS = ["line", "reason", "message", "duplicate_of_line"]


def accepted_frame(result: IngestResult) -> pd.DataFrame:
    import pandas as pd  # here, not at the top: helper processes import this package, fast

    extras = _carried(result, taken=ACCEPTED_COLUMNS)
    notes: dict[int, list[str]] = {}
    for warning in result.warnings:
        notes.setdefault(warning.line, []).append(f"{warning.kind}: {warning.message}")
    records = [
        [
            row.line,
            row.e164,
            row.national,
            row.region,
            str(row.number_type),
            row.alias or "",
            str(row.channel),
            row.subaccount or "",
            row.owner or "",
            row.raw,
            " | ".join(notes.get(row.line, ())),
            *(row.extra.get(name, "") for name in extras.values()),
        ]
        for row in result.accepted
    ]
    return pd.DataFrame(records, columns=[*ACCEPTED_COLUMNS, *extras], dtype=object)


def rejected_frame(result: IngestResult) -> pd.DataFrame:
    import pandas as pd

    ours = result.columns
    extras = _carried(result, taken=[*REJECT_COLUMNS, *ours.values()])
    records = [
        [
            row.line,
            str(row.reason),
            row.message,
            "" if row.duplicate_of_line is None else row.duplicate_of_line,
            *(_raw_cell(row, name) for name in ours),
            *(row.extra.get(name, "") for name in extras.values()),
        ]
        for row in result.rejected
    ]
    return pd.DataFrame(records, columns=[*REJECT_COLUMNS, *ours.values(), *extras], dtype=object)


def write_reports(result: IngestResult, out_dir: str | PathLike[str]) -> tuple[Path, Path]:
    """Write `accepted.csv` and `rejects.csv` (UTF-8) into `out_dir`, creating it if needed."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    accepted_path, rejects_path = folder / "accepted.csv", folder / "rejects.csv"
    accepted = accepted_frame(result)
    _neutralise(accepted, [*_INPUT_TEXT, *accepted.columns[len(ACCEPTED_COLUMNS) :]])
    accepted.to_csv(accepted_path, index=False, encoding="utf-8")
    rejected = rejected_frame(result)
    _neutralise(rejected, ["message", *rejected.columns[len(REJECT_COLUMNS) :]])
    rejected.to_csv(rejects_path, index=False, encoding="utf-8")
    return accepted_path, rejects_path


def _neutralise(frame: pd.DataFrame, columns: list[str]) -> None:
    for column in columns:
        frame[column] = [safe_cell(value) for value in frame[column]]


def summary_lines(result: IngestResult, *, max_warnings: int = 20) -> list[str]:
    """A short account of the ingest for a person: counts, reasons, the first warnings."""
    if result.sheet is None:
        source = f"{result.encoding}, delimiter {result.delimiter!r}, {result.blank_lines} blank"
        source += " lines skipped"
    else:
        source = f"{result.encoding} sheet {result.sheet!r}, {result.blank_lines} blank rows"
        source += " skipped"
    lines = [
        f"{result.data_rows} rows read ({source}): {len(result.accepted)} accepted, "
        f"{len(result.rejected)} rejected, {len(result.warnings)} warnings",
        "columns: " + ", ".join(f"{ours} = {found!r}" for ours, found in result.columns.items()),
    ]
    if result.extra_columns:
        lines.append("carried through: " + ", ".join(result.extra_columns))
    for reason, count in result.counts_by_reason().items():
        lines.append(f"  rejected {reason}: {count}")
    for warning in result.warnings[:max_warnings]:
        lines.append(f"  warning line {warning.line} ({warning.kind}): {warning.message}")
    if len(result.warnings) > max_warnings:
        more = len(result.warnings) - max_warnings
        lines.append(f"  ... and {more} more warnings (the `warnings` column of accepted.csv)")
    return lines


def _carried(result: IngestResult, *, taken: list[str]) -> dict[str, str]:
    """Report header -> extra column; a carried column named like one of ours gets `input_`."""
    names: dict[str, str] = {}
    for name in result.extra_columns:
        header = name
        while header in taken or header in names:
            header = f"input_{header}"
        names[header] = name
    return names


def _raw_cell(row: RejectedRow, name: str) -> str:
    """The cell as written: `raw` for the number, the same-named field for the others."""
    return row.raw if name == "phone_number" else str(getattr(row, name))
