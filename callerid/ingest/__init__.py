"""Ingest: a CSV of numbers to E.164 records; every row accepted, or rejected for a reason.

Plain pandas + phonenumbers, no Prefect: `tasks/ingest.py` wraps `ingest_csv` for the flows.
"""

from __future__ import annotations

from callerid.ingest.ingest import ingest_csv
from callerid.ingest.models import (
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

__all__ = [
    "AcceptedRow",
    "Channel",
    "IngestInputError",
    "IngestOptionError",
    "IngestResult",
    "NumberType",
    "RejectReason",
    "RejectedRow",
    "RowWarning",
    "WarningKind",
    "accepted_frame",
    "ingest_csv",
    "rejected_frame",
    "summary_lines",
    "write_reports",
]
