"""`callerid reconcile` against the sandbox and a file ledger: dry run, apply, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import NumberRecord, NumberStatus, open_ledger
from callerid.sandbox.server import SandboxServer
from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
from tests.e2e.helpers import sandbox_env

runner = CliRunner()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    now = datetime.now(UTC)
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(
            DEFAULT_AUTH_ID,
            [NumberRecord("+14155550001", alias="front"), NumberRecord("+14155550004")],
            None,
            now,
        )
        for number in ("+14155550001", "+14155550004"):
            row = uow.numbers.get(DEFAULT_AUTH_ID, number)
            assert row is not None
            uow.numbers.transition(row, NumberStatus.VERIFIED, reason="seed", run_id=None, now=now)
        uow.commit()
    with SandboxServer(seed=3) as server:
        server.backend.seed_verified("+14155550001", alias="renamed")
        server.backend.seed_verified("+14155550009", alias="stranger")
        for key, value in sandbox_env(server.url, url, tmp_path / "out").items():
            monkeypatch.setenv(key, value)
        yield server


def test_dry_run_lists_what_would_change_and_changes_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["reconcile", "--prune"])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert "would update +14155550001: alias -> 'front'" in result.output
    assert "would delete +14155550009" in result.output
    assert sandbox.backend.get(DEFAULT_AUTH_ID, "+14155550001").alias == "renamed"
    assert len(list((tmp_path / "out" / "reconcile").glob("reconcile-*.csv"))) == 1
    assert DEFAULT_AUTH_TOKEN not in result.output


def test_apply_with_requeue_changes_account_and_ledger(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["reconcile", "--apply", "--requeue-lost"])
    assert result.exit_code == 0, result.output
    assert sandbox.backend.get(DEFAULT_AUTH_ID, "+14155550001").alias == "front"
    assert sandbox.backend.get(DEFAULT_AUTH_ID, "+14155550009").alias == "stranger"  # no prune
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        row = uow.numbers.get(DEFAULT_AUTH_ID, "+14155550004")
        assert row is not None and row.status == "queued"


def test_prune_against_a_desired_csv_with_rejected_rows_is_refused(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    desired = tmp_path / "desired.csv"
    desired.write_text("phone_number,alias\n+14155550001,front\n12,short\n")
    result = runner.invoke(app, ["reconcile", "--desired", str(desired), "--apply", "--prune"])
    assert result.exit_code == 2
    assert "refusing to prune" in result.output
    assert sandbox.backend.get(DEFAULT_AUTH_ID, "+14155550009").alias == "stranger"


def test_half_set_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials at all means the embedded sandbox account; half of them is a mistake."""
    monkeypatch.setenv("PLIVO_AUTH_ID", DEFAULT_AUTH_ID)
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)
    result = runner.invoke(app, ["reconcile"])
    assert result.exit_code == 2
    assert "PLIVO_AUTH_TOKEN is not set (PLIVO_AUTH_ID is)" in result.output
