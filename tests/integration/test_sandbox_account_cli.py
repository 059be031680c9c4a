"""The embedded default's one account over time (issue 11), through the real commands: a
standalone `callerid sandbox serve --state out/sandbox-account.json` and `callerid reconcile`
with no credentials share the one account; what one changes, the other finds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import NumberRecord, NumberStatus, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
from tests.e2e.helpers import read_csv

CALLERID = Path(sys.executable).with_name("callerid")
KEPT, DELETED, RENAMED = "+14155550101", "+14155550102", "+14155550103"


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "PLIVO_API_URL", "CALLERID_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path / "out"))
    return tmp_path / "out"


@pytest.fixture
def served(out: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [
            str(CALLERID),
            "sandbox",
            "serve",
            "--port",
            "0",
            "--state",
            str(out / "sandbox-account.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("Plivo sandbox listening on"), first
    try:
        yield first.rsplit(" ", 1)[1].strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        process.stdout.close()


def _report(out: Path) -> dict[str, list[str]]:
    newest = max((out / "reconcile").glob("reconcile-*.csv"))
    found: dict[str, list[str]] = {}
    for row in read_csv(newest):
        found.setdefault(row["category"], []).append(row["phone_number"])
    return found


def test_serve_with_state_and_reconcile_without_credentials_share_one_account(
    out: Path, served: str
) -> None:
    seeded = httpx.post(
        f"{served}/_sandbox/caller_ids",
        json={
            "caller_ids": [{"phone_number": n, "alias": "desk"} for n in (KEPT, DELETED, RENAMED)]
        },
    )
    assert seeded.status_code == 201
    now = datetime.now(UTC)
    with open_ledger(f"sqlite:///{out / 'ledger.sqlite3'}") as ledger, ledger.unit_of_work() as uow:
        records = [NumberRecord(n, alias="desk") for n in (KEPT, DELETED, RENAMED)]
        uow.numbers.upsert_many(DEFAULT_AUTH_ID, records, None, now)
        for n in (KEPT, DELETED, RENAMED):
            row = uow.numbers.get(DEFAULT_AUTH_ID, n)
            assert row is not None
            uow.numbers.transition(row, NumberStatus.VERIFIED, reason="seed", run_id=None, now=now)
        uow.commit()

    runner = CliRunner()
    first = runner.invoke(app, ["reconcile"])
    assert first.exit_code == 0, first.output
    assert sorted(_report(out)["verified"]) == [KEPT, DELETED, RENAMED]

    # changed on the account, through the standalone server's API
    api = f"{served}/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId"
    auth = (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
    assert httpx.delete(f"{api}/{DELETED.lstrip('+')}/", auth=auth).status_code == 204
    renamed = httpx.post(f"{api}/{RENAMED.lstrip('+')}/", json={"alias": "by hand"}, auth=auth)
    assert renamed.status_code == 200

    second = runner.invoke(app, ["reconcile"])
    assert second.exit_code == 0, second.output
    report = _report(out)
    assert report["lost"] == [DELETED] and report["alias_drift"] == [RENAMED]

    applied = runner.invoke(app, ["reconcile", "--apply"])  # this process changes the account
    assert applied.exit_code == 0, applied.output
    got = httpx.get(f"{api}/{RENAMED.lstrip('+')}/", auth=auth).json()
    assert got["alias"] == "desk"  # ... and the standalone server sees it
