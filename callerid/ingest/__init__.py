"""Ingest: a CSV or spreadsheet of numbers to E.164 records; every row accepted, or rejected for
a reason.

Plain phonenumbers (+ python-calamine for spreadsheets), no Prefect: `tasks/ingest.py` wraps
`ingest_csv` for the flows. `sniff_input` tells, cheaply and up front, whether a file can be
read at all; `safe_cell` neutralises a cell for a CSV report that people open in a spreadsheet.
"""

from __future__ import annotations

from callerid.ingest.fields import resolve_channel
from callerid.ingest.ingest import ingest_csv
from callerid.ingest.models import (
    AUTO_CHANNEL,
    AcceptedRow,
    Channel,
    IngestInputError,
    IngestOptionError,
    IngestResult,
    NumberType,
    RejectedRow,
    RejectReason,
    RowWarning,
    WarningKind,
)
from callerid.ingest.report import accepted_frame, rejected_frame, summary_lines, write_reports
from callerid.ingest.safety import safe_cell
from callerid.ingest.sniff import SPREADSHEETS, InputKind, sniff_input

__all__ = [
    "AUTO_CHANNEL",
    "SPREADSHEETS",
    "AcceptedRow",
    "Channel",
    "IngestInputError",
    "IngestOptionError",
    "IngestResult",
    "InputKind",
    "NumberType",
    "RejectReason",
    "RejectedRow",
    "RowWarning",
    "WarningKind",
    "accepted_frame",
    "ingest_csv",
    "rejected_frame",
    "resolve_channel",
    "safe_cell",
    "sniff_input",
    "summary_lines",
    "write_reports",
]
