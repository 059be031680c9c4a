"""`callerid db upgrade|current` and `callerid status` on file SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import NumberStatus, open_ledger
from callerid.ledger.migrate import head_revision
from tests.ledger_support import ACCOUNT, RUN, T0, drive, e164s, register


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns without a terminal


def test_db_upgrade_migrates_then_has_nothing_to_do(db_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--url", db_url])
    assert first.exit_code == 0, first.output
    assert f"empty -> {head_revision()}" in first.output
    second = runner.invoke(app, ["db", "upgrade", "--url", db_url])
    assert second.exit_code == 0 and f"already at {head_revision()}" in second.output
    current = runner.invoke(app, ["db", "current", "--url", db_url])
    assert f"current: {head_revision()}" in current.output


def test_db_upgrade_takes_the_url_from_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLERID_DATABASE_URL", pg_url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0 and "postgresql+psycopg://" in result.output
    with open_ledger(pg_url, migrate=False) as ledger:
        assert ledger.revision() == head_revision()


def test_an_unreachable_database_is_exit_2_without_its_password() -> None:
    url = "postgresql://ledger:s3cret@127.0.0.1:1/nothing"
    result = CliRunner().invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 2
    assert "cannot use the ledger" in result.output and "s3cret" not in result.output


def test_status_counts_numbers_per_account_and_lists_runs(db_url: str) -> None:
    with open_ledger(db_url) as ledger:
        register(ledger, 5)
        register(ledger, 2, account="MAOTHER")
        a, b, *_ = e164s(5)
        drive(ledger, a, NumberStatus.INITIATING, NumberStatus.INITIATED)
        drive(ledger, b, NumberStatus.ALREADY_VERIFIED)
        with ledger.unit_of_work() as uow:
            uow.runs.start_run(RUN, ACCOUNT, input_path="numbers.csv", now=T0)
            uow.runs.finish_run(RUN, {"verified": 1}, T0 + timedelta(minutes=3))
            uow.commit()
    result = CliRunner().invoke(app, ["status", "--url", db_url])
    assert result.exit_code == 0, result.output
    lines = result.output.replace("┃", "│").splitlines()
    header = next(line for line in lines if "│" in line and "status" in line)
    columns = [c.strip() for c in header.split("│")[1:-1]]
    mine = columns.index(ACCOUNT)
    column = {
        cells[0]: cells[mine]
        for cells in ([c.strip() for c in line.split("│")[1:-1]] for line in lines)
        if len(cells) == len(columns) and cells[0] != "status"
    }
    assert column == {
        "queued": "3",
        "initiating": "0",
        "initiated": "1",
        "completing": "0",
        "verified": "0",
        "already_verified": "1",
        "expired": "0",
        "failed": "0",
        "total": "5",
    }
    assert "MAOTHER" in columns
    assert f"{RUN[:8]}  {ACCOUNT}" in result.output and "verified 1" in result.output
    only = CliRunner().invoke(app, ["status", "--url", db_url, "--account", "MAOTHER"])
    assert "MAOTHER" in only.output and ACCOUNT not in only.output


def test_status_does_not_create_a_ledger_that_is_not_there(tmp_path: Path) -> None:
    path = tmp_path / "out" / "ledger.sqlite3"
    result = CliRunner().invoke(app, ["status", "--url", f"sqlite:///{path}"])
    assert result.exit_code == 1 and "no ledger yet" in result.output
    assert not path.exists()


def test_status_of_an_unmigrated_server_says_to_upgrade(pg_url: str) -> None:
    result = CliRunner().invoke(app, ["status", "--url", pg_url])
    assert result.exit_code == 1 and "callerid db upgrade" in result.output
