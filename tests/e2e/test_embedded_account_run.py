"""`callerid run` on the embedded default keeps its account (issue 11): the numbers one run
verified are listed by the next run's sandbox from out/sandbox-account.json, not re-seeded from
the ledger. Shown with a fresh ledger: the second run finds them all `already_verified` and sends
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import Event, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID
from callerid.sandbox.embedded import embedded_backend
from tests.e2e.helpers import valid_numbers, write_csv

pytestmark = pytest.mark.slow


def _statuses(out: Path) -> dict[str, str]:
    with open_ledger(f"sqlite:///{out / 'ledger.sqlite3'}") as ledger, ledger.unit_of_work() as uow:
        return {n.e164: n.status for n in uow.numbers.by_status(DEFAULT_AUTH_ID)}


def test_a_second_run_finds_the_first_runs_caller_ids_on_the_account(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL", "CALLERID_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "out"
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(out))
    numbers = valid_numbers(5, prefix="+1415555")
    csv_path = write_csv(tmp_path / "n.csv", [{"phone_number": n} for n in numbers])
    runner = CliRunner()

    first = runner.invoke(app, ["run", str(csv_path), "--reply-delay", "0.2"])
    assert first.exit_code == 0, first.output
    assert set(_statuses(out).values()) == {"verified"}

    for leftover in out.glob("ledger.sqlite3*"):
        leftover.unlink()  # a new ledger; the account remains
    second = runner.invoke(app, ["run", str(csv_path), "--reply-delay", "0.2"])
    assert second.exit_code == 0, second.output
    assert set(_statuses(out).values()) == {"already_verified"}
    with open_ledger(f"sqlite:///{out / 'ledger.sqlite3'}") as ledger, ledger.unit_of_work() as uow:
        sent = uow.session.execute(
            select(func.count()).select_from(Event).where(Event.to_status == "initiating")
        ).scalar_one()
    assert sent == 0  # the account listed them: no OTP was sent
    assert embedded_backend(out).list(DEFAULT_AUTH_ID).total_count == 5
