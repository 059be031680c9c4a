"""Reconcile the account's verified caller IDs with the ledger and a desired-state CSV.

No Prefect here: `flows/reconcile.py` sequences these steps; `callerid reconcile` runs them
directly.
"""

from __future__ import annotations

from callerid.reconcile.compare import compare, counts, plan
from callerid.reconcile.models import (
    Action,
    ActionKind,
    ActionResult,
    Category,
    Desired,
    Finding,
    Known,
    Listed,
    Outcome,
    Scope,
)
from callerid.reconcile.report import ReconcileReport, build_report, summary_markdown, write_csv

__all__ = [
    "Action",
    "ActionKind",
    "ActionResult",
    "Category",
    "Desired",
    "Finding",
    "Known",
    "Listed",
    "Outcome",
    "ReconcileReport",
    "Scope",
    "build_report",
    "compare",
    "counts",
    "plan",
    "summary_markdown",
    "write_csv",
]
