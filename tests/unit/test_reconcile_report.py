"""Report rows, the attention table and the markdown summary; the shared bucket's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from callerid.reconcile.compare import compare, plan
from callerid.reconcile.models import ActionResult, Known, Listed, Outcome, Scope
from callerid.reconcile.report import attention_table, build_report, rows, summary_markdown
from callerid.reconcile.service import planned, report_path
from tasks.account import bucket_shape, limit_name, worst_case_requests


def _report(applied: bool = False):  # type: ignore[no-untyped-def]
    findings = compare(
        [
            Listed("+14155550001", alias="a"),
            Listed("+14155550002", alias="b"),
            Listed("+14155550009"),
        ],
        [
            Known("+14155550001", "verified", alias="a"),
            Known("+14155550002", "verified", alias="x"),
        ],
    )
    actions = plan(findings, prune=True)
    results = (
        [ActionResult(a, Outcome.FAILED, error="ServerError: boom") for a in actions]
        if applied
        else planned(actions)
    )
    return build_report(Scope("MASANDBOXACCOUNT0001"), findings, results, applied=applied)


def test_rows_attach_each_action_to_its_finding_only() -> None:
    by_number = {r["phone_number"]: r for r in rows(_report())}
    assert by_number["+14155550001"]["action"] == ""
    assert by_number["+14155550002"]["action"] == "update +14155550002: alias -> 'x'"
    assert by_number["+14155550009"]["action"] == "delete +14155550009 (listed, unknown)"
    assert {r["outcome"] for r in by_number.values()} == {"", "planned"}


def test_attention_table_leaves_out_plain_verified_and_is_capped() -> None:
    report = _report()
    assert [r["category"] for r in attention_table(report)] == ["alias_drift", "extra"]
    assert len(attention_table(report, limit=1)) == 1


def test_summary_says_dry_run_and_counts_failures() -> None:
    assert "dry run: nothing was changed" in summary_markdown(_report())
    applied = summary_markdown(_report(applied=True))
    assert "**applied**" in applied and "2 action(s) failed" in applied
    assert "| extra | 1 |" in applied


def test_report_paths_sort_by_time(tmp_path: Path) -> None:
    assert report_path(tmp_path).parent == tmp_path / "reconcile"


@pytest.mark.parametrize(("n", "period"), [(300, 5.0), (40, 2.0), (20, 1.0), (3000, 5.0)])
def test_shared_bucket_keeps_two_workers_under_the_account_limit(n: int, period: float) -> None:
    shape = bucket_shape("MASANDBOXACCOUNT0001", n, period)
    assert shape.name == limit_name("MASANDBOXACCOUNT0001") == "plivo-masandboxaccount0001"
    assert shape.limit >= shape.block >= 1
    assert worst_case_requests(shape, period, workers=2) <= n
    assert shape.slot_decay_per_second >= 0.8 * n / period
