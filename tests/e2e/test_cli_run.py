"""`callerid run` as a person types it: no credentials, so the in-process sandbox, end to end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import Event, Number, open_ledger
from tests.e2e.helpers import read_csv

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample.csv"
pytestmark = pytest.mark.slow


@pytest.fixture
def no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL", "CALLERID_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "out"


def _run_id(output: str) -> str:
    found = re.search(r"run id ([0-9a-f-]{36})", output)
    assert found, output
    return found.group(1)


def test_sample_csv_verifies_end_to_end_and_a_rerun_sends_nothing(
    prefect_api: str, no_credentials: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["run", str(SAMPLE), "--reply-delay", "0.2"])
    assert first.exit_code == 0, first.output
    assert "local sandbox" in first.output
    rows = read_csv(no_credentials / "runs" / _run_id(first.output) / "results.csv")
    data_rows = len(SAMPLE.read_text(encoding="utf-8").splitlines()) - 1
    assert len(rows) == data_rows
    statuses = {r["status"] for r in rows}
    assert statuses == {"verified", "rejected"}
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert all(r["reason"] for r in rejected)

    second = runner.invoke(app, ["run", str(SAMPLE)])
    assert second.exit_code == 0, second.output
    rerun = _run_id(second.output)
    again = read_csv(no_credentials / "runs" / rerun / "results.csv")
    assert [r["status"] for r in again] == [r["status"] for r in rows]
    url = f"sqlite:///{no_credentials / 'ledger.sqlite3'}"
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        sent = uow.session.execute(
            select(func.count())
            .select_from(Event)
            .where(Event.run_id == rerun, Event.to_status == "initiating")
        ).scalar_one()
    assert sent == 0  # verified numbers are left alone

    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0 and rerun[:8] in listing.output


def test_dry_run_prints_the_plan_and_writes_nothing(prefect_api: str, no_credentials: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(SAMPLE), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was sent" in result.output
    assert re.search(r"to initiate: \d+", result.output)
    url = f"sqlite:///{no_credentials / 'ledger.sqlite3'}"
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        count = uow.session.execute(select(func.count()).select_from(Number)).scalar_one()
    assert count == 0


def test_a_missing_file_is_a_usage_error(no_credentials: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(no_credentials / "nope.csv")])
    assert result.exit_code == 2
