"""Pure parts of the pipeline: the dry-run plan, the reports, the progress file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from callerid.ingest.models import (
    AcceptedRow,
    Channel,
    IngestResult,
    NumberType,
    RejectedRow,
    RejectReason,
)
from callerid.pipeline.options import PipelineOptions, RunPaths
from callerid.pipeline.plan import build_plan, format_seconds, list_pages
from callerid.pipeline.progress import Progress, read_progress, write_progress
from callerid.pipeline.report import (
    NumberOutcome,
    failure_rows,
    result_rows,
    summary_markdown,
    write_run_reports,
)


def _accepted(line: int, e164: str) -> AcceptedRow:
    return AcceptedRow(
        line=line,
        raw=e164[2:],
        e164=e164,
        national=e164[2:],
        region="US",
        number_type=NumberType.FIXED_LINE_OR_MOBILE,
        alias=f"a{line}",
        channel=Channel.SMS,
        subaccount=None,
    )


def _ingest() -> IngestResult:
    accepted = [_accepted(2, "+14155550101"), _accepted(4, "+14155550102")]
    rejected = [
        RejectedRow(3, "12", RejectReason.TOO_SHORT, "too short for US"),
        RejectedRow(5, "4155550101", RejectReason.DUPLICATE, "duplicate", duplicate_of_line=2),
    ]
    return IngestResult(accepted, rejected, [], 4, 0, {"phone_number": "phone"}, [])


def test_plan_counts_each_number_once_and_estimates_at_the_limit() -> None:
    plan = build_plan(
        ["+1a", "+1b", "+1c", "+1d", "+1e", "+1a"],
        rejected=3,
        listed_e164s={"+1b"},
        ledger_statuses={"+1c": "failed", "+1d": "initiated", "+1e": "queued"},
        max_requests=300,
        period_s=5.0,
    )
    assert (plan.accepted, plan.rejected) == (5, 3)
    assert (plan.already_verified, plan.already_failed, plan.waiting) == (1, 1, 1)
    assert plan.to_initiate == 2  # +1a (new) and +1e (queued)
    assert plan.list_pages == 2
    assert plan.api_requests == 2 * 2 + 1 + 2
    assert plan.estimated_seconds == pytest.approx(7 / 60)
    assert any("to initiate: 2" in line for line in plan.lines())


@pytest.mark.parametrize(("count", "pages"), [(0, 1), (1, 1), (20, 1), (21, 2), (2000, 100)])
def test_list_pages(count: int, pages: int) -> None:
    assert list_pages(count) == pages


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5 s"), (125, "2 min 05 s"), (7200, "2 h 00 min")]
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_results_have_every_input_row_in_file_order(tmp_path: Path) -> None:
    outcomes = {
        "+14155550101": NumberOutcome("+14155550101", "verified", "uuid-1", attempts=1),
        "+14155550102": NumberOutcome(
            "+14155550102", "failed", None, attempts=2, last_error="no code within 15 minutes"
        ),
    }
    paths = RunPaths.for_run(tmp_path, "run-1")
    counts = write_run_reports(paths, _ingest(), outcomes)
    assert counts == {"failed": 1, "rejected": 2, "verified": 1}
    assert [r["line"] for r in result_rows(_ingest(), outcomes)] == [2, 3, 4, 5]
    with paths.results_csv.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [w["line"] for w in written] == ["2", "3", "4", "5"]
    assert [w["status"] for w in written] == ["verified", "rejected", "failed", "rejected"]
    assert written[0]["verification_uuid"] == "uuid-1"
    assert written[2]["reason"] == "no code within 15 minutes"
    assert written[3]["reason"] == "duplicate: same number as line 2"
    with paths.rejects_csv.open(newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert [r["line"] for r in rejects] == ["3", "5"]
    assert rejects[1]["duplicate_of_line"] == "2"


def test_a_number_missing_from_the_ledger_is_reported_not_dropped() -> None:
    rows = result_rows(_ingest(), {})
    assert [r["status"] for r in rows if r["phone_number"]] == ["unknown", "unknown"]


def test_failures_table_lists_only_numbers_that_did_not_verify() -> None:
    outcomes = {
        "+1a": NumberOutcome("+1a", "verified"),
        "+1b": NumberOutcome("+1b", "already_verified"),
        "+1c": NumberOutcome("+1c", "failed", attempts=2, wrong_otps=1),
    }
    assert failure_rows(outcomes) == [
        {
            "phone_number": "+1c",
            "status": "failed",
            "attempts": 2,
            "wrong_otps": 1,
            "reason": "not verified after 2 attempt(s)",
        }
    ]


def test_summary_markdown_is_not_indented(tmp_path: Path) -> None:
    text = summary_markdown(
        run_id="r",
        csv_path="x.csv",
        counts={"verified": 2, "rejected": 1},
        paths=RunPaths.for_run(tmp_path, "r"),
        sandbox=True,
        elapsed_s=1.0,
    )
    assert all(not line.startswith(" ") for line in text.splitlines())
    assert "| **total** | 3 |" in text and "sandbox" in text


def test_progress_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r" / "progress.json"
    assert read_progress(path) is None
    progress = Progress.from_statuses(
        {"+1a": "verified", "+1b": "failed", "+1c": "initiated"}, phase="verifying"
    )
    write_progress(path, progress)
    back = read_progress(path)
    assert back == progress
    assert (back.final, back.verified, round(back.fraction, 2)) == (2, 1, 0.67)


@pytest.mark.parametrize(
    "bad",
    [{"max_attempts": 0}, {"max_in_flight": 0}, {"batch_size": 0}, {"channel": "fax"}],
)
def test_options_refuse_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PipelineOptions(**bad)  # type: ignore[arg-type]
