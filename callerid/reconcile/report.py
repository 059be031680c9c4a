"""The reconciliation report: one CSV row per finding, plus summaries small enough for the UI.

The CSV is complete; the table for the Prefect UI holds only what needs attention (everything but
plain `verified`), capped at `TABLE_ROWS` rows, because artifacts live in the server's database
(prefect-notes §4). Nothing here carries a secret: aliases, subaccount ids and E.164 numbers only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from callerid.reconcile.compare import counts
from callerid.reconcile.models import (
    Action,
    ActionKind,
    ActionResult,
    Category,
    Finding,
    Outcome,
    Scope,
)

COLUMNS = (
    "phone_number",
    "category",
    "listed_alias",
    "expected_alias",
    "listed_subaccount",
    "expected_subaccount",
    "ledger_status",
    "action",
    "outcome",
    "error",
)
TABLE_ROWS = 200


@dataclass(frozen=True)
class ReconcileReport:
    scope: Scope
    findings: tuple[Finding, ...]
    results: tuple[ActionResult, ...]
    applied: bool
    csv_path: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def planned(self) -> tuple[Action, ...]:
        return tuple(r.action for r in self.results)

    def with_csv(self, path: Path) -> ReconcileReport:
        return replace(self, csv_path=path)

    def numbers(self, category: Category) -> list[str]:
        return [f.phone_number for f in self.findings if f.category is category]

    def outcome_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            key = f"{r.action.kind.value}:{r.outcome.value}"
            out[key] = out.get(key, 0) + 1
        return out


def build_report(
    scope: Scope,
    findings: Sequence[Finding],
    results: Iterable[ActionResult],
    *,
    applied: bool,
) -> ReconcileReport:
    return ReconcileReport(
        scope=scope,
        findings=tuple(findings),
        results=tuple(results),
        applied=applied,
        counts=counts(findings),
    )


def _actions_by_number(results: Iterable[ActionResult]) -> dict[str, ActionResult]:
    return {r.action.phone_number: r for r in results}


def rows(report: ReconcileReport) -> list[dict[str, str]]:
    """The report as CSV-ready rows (empty string for absent values)."""
    by_number = _actions_by_number(report.results)
    out = []
    for f in report.findings:
        result = by_number.get(f.phone_number)
        relevant = result is not None and _concerns(result.action, f.category)
        out.append(
            {
                "phone_number": f.phone_number,
                "category": f.category.value,
                "listed_alias": f.listed_alias or "",
                "expected_alias": f.expected_alias or "",
                "listed_subaccount": f.listed_subaccount or "",
                "expected_subaccount": f.expected_subaccount or "",
                "ledger_status": f.ledger_status or "",
                "action": result.action.describe() if result and relevant else "",
                "outcome": result.outcome.value if result and relevant else "",
                "error": (result.error or "") if result and relevant else "",
            }
        )
    return out


def _concerns(action: Action, category: Category) -> bool:
    if action.kind is ActionKind.UPDATE:
        return category in (Category.ALIAS_DRIFT, Category.SUBACCOUNT_DRIFT)
    if action.kind is ActionKind.DELETE:
        return category is Category.EXTRA
    return category is Category.LOST


def write_csv(report: ReconcileReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows(report))
    return path


def attention_table(report: ReconcileReport, limit: int = TABLE_ROWS) -> list[dict[str, str]]:
    """Rows that need a look (not plain `verified`), at most `limit` of them."""
    return [r for r in rows(report) if r["category"] != Category.VERIFIED.value][:limit]


def summary_markdown(report: ReconcileReport) -> str:
    scope = report.scope
    where = ", ".join(
        part
        for part in (
            f"account `{scope.account}`",
            f"subaccount `{scope.subaccount}`" if scope.subaccount else "",
            f"country `{scope.country}`" if scope.country else "",
        )
        if part
    )
    mode = "applied" if report.applied else "dry run: nothing was changed"
    lines = [f"# Reconcile: {where}", "", f"Mode: **{mode}**.", "", "| category | numbers |"]
    lines.append("|---|---|")
    lines.extend(f"| {name} | {n} |" for name, n in report.counts.items())
    if report.results:
        lines += ["", "| action | outcome | count |", "|---|---|---|"]
        for key, n in sorted(report.outcome_counts().items()):
            kind, outcome = key.split(":")
            lines.append(f"| {kind} | {outcome} | {n} |")
    failed = [r for r in report.results if r.outcome is Outcome.FAILED]
    if failed:
        lines += ["", f"{len(failed)} action(s) failed; see the CSV report for the errors."]
    if report.csv_path is not None:
        lines += ["", f"Full report: `{report.csv_path}`"]
    return "\n".join(lines) + "\n"
