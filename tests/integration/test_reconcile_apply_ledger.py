"""Issue 15: what `callerid reconcile --apply` changes on the account, the ledger holds too.

`--desired` + `--apply`, then a plain reconcile (dry run, then `--apply`): the plain run finds every
number verified, plans nothing and changes nothing, on file SQLite and PostgreSQL, against the
sandbox over HTTP. Also: a crash between the ledger write and the account call is finished by the
next reconcile (never reverted), and a change the account refuses gives the ledger its old values
back.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.ledger import NumberRecord, NumberStatus, open_ledger
from callerid.reconcile.compare import compare, plan
from callerid.reconcile.ledger_view import LedgerSync, load_known
from callerid.reconcile.models import Desired, Listed
from callerid.sandbox import DEFAULT_SUBACCOUNTS
from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.server import SandboxServer
from callerid.sandbox.state import DEFAULT_AUTH_ID
from tests.e2e.helpers import read_csv, sandbox_env

runner = CliRunner()
SA1 = "SASANDBOXSUBACCT0001"
A, B, C, D, E = (f"+1415555000{i}" for i in range(1, 6))


def _verified(url: str, records: list[NumberRecord]) -> None:
    now = datetime.now(UTC)
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(DEFAULT_AUTH_ID, records, None, now)
        for record in records:
            row = uow.numbers.get(DEFAULT_AUTH_ID, record.e164)
            assert row is not None
            uow.numbers.transition(row, NumberStatus.VERIFIED, reason="seed", run_id=None, now=now)
        uow.commit()


@pytest.fixture
def sandbox(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """Ledger: A..C and E verified. Account: A..E, E already renamed the way the CSV wants it."""
    _verified(
        db_url,
        [
            NumberRecord(A, alias="Charlie"),
            NumberRecord(B, alias="bravo"),
            NumberRecord(C, alias="charlie"),
            NumberRecord(E, alias="old echo"),
        ],
    )
    backend = SandboxBackend(seed=5, subaccounts=DEFAULT_SUBACCOUNTS)
    with SandboxServer(backend) as server:
        b = server.backend
        b.seed_verified(A, alias="Charlie")
        b.seed_verified(B, alias="bravo")
        b.seed_verified(C, alias="charlie")
        b.seed_verified(D, alias="delta on the account")
        b.seed_verified(E, alias="new echo")
        for key, value in sandbox_env(server.url, db_url, tmp_path / "out").items():
            monkeypatch.setenv(key, value)
        yield server


def _desired(tmp_path: Path) -> str:
    path = tmp_path / "desired.csv"
    path.write_text(
        "phone_number,alias,subaccount\n"
        f"{A},Charlie New,\n"  # alias drift
        f"{B},,{SA1}\n"  # subaccount drift, no opinion on the alias
        f"{D},,\n"  # listed, unknown to the ledger: the ledger adopts it
        f"{E},new echo,\n"  # the account already agrees; the ledger does not
    )
    return str(path)


def _account(server: SandboxServer) -> dict[str, tuple[str, str]]:
    page = server.backend.list(DEFAULT_AUTH_ID, limit=20)
    return {c.phone_number: (c.alias, c.subaccount) for c in page.objects}


def _report(output_dir: Path) -> list[dict[str, str]]:
    """The newest reconcile report (file names are UTC timestamps)."""
    return read_csv(max((output_dir / "reconcile").glob("reconcile-*.csv")))


def test_desired_apply_then_a_plain_reconcile_finds_nothing_to_do(
    sandbox: SandboxServer, db_url: str, tmp_path: Path
) -> None:
    applied = runner.invoke(app, ["reconcile", "--desired", _desired(tmp_path), "--apply"])
    assert applied.exit_code == 0, applied.output
    after_apply = _account(sandbox)
    assert after_apply[A] == ("Charlie New", "")
    assert after_apply[B] == ("bravo", SA1)

    known = {k.phone_number: k for k in load_known(db_url, DEFAULT_AUTH_ID)}
    assert (known[A].alias, known[B].subaccount, known[E].alias) == ("Charlie New", SA1, "new echo")
    assert known[D].status == "already_verified" and known[D].alias == "delta on the account"
    with open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        history = uow.events.history(DEFAULT_AUTH_ID, A)
    assert "reconcile run" in (history[-1].reason or "")
    assert history[-1].run_id and history[-1].run_id in history[-1].reason  # type: ignore[operator]

    requests = sandbox.backend.stats()["total_requests"]
    for args in (["reconcile"], ["reconcile", "--apply"]):
        plain = runner.invoke(app, args)
        assert plain.exit_code == 0, plain.output
        rows = _report(tmp_path / "out")
        assert {r["category"] for r in rows} == {"verified"}, rows
        assert len(rows) == 5
        assert not [r for r in rows if r["action"]], rows
        assert "would " not in plain.output
    assert _account(sandbox) == after_apply
    # two plain runs: one list page each, no update, no delete
    assert sandbox.backend.stats()["total_requests"] == requests + 2


def test_a_crash_between_ledger_and_account_is_finished_by_the_next_reconcile(
    sandbox: SandboxServer, db_url: str, tmp_path: Path
) -> None:
    listed = [Listed(A, alias="Charlie", subaccount="")]
    findings = compare(listed, load_known(db_url, DEFAULT_AUTH_ID), [Desired(A, "Charlie New")])
    (action,) = [a for a in plan(findings) if a.phone_number == A]
    LedgerSync(db_url, DEFAULT_AUTH_ID, "run-that-crashed").write([action])
    # ... and the process died before the account call.

    plain = runner.invoke(app, ["reconcile", "--apply"])
    assert plain.exit_code == 0, plain.output
    assert _account(sandbox)[A] == ("Charlie New", "")  # finished, not reverted
    known = {k.phone_number: k for k in load_known(db_url, DEFAULT_AUTH_ID)}
    assert known[A].alias == "Charlie New"
    again = runner.invoke(app, ["reconcile"])
    assert "would " not in again.output
    rows = _report(tmp_path / "out")
    # the stranger no CSV named stays an extra, as before
    assert {r["phone_number"] for r in rows if r["category"] != "verified"} == {D}


def test_a_change_the_account_refuses_leaves_the_ledger_as_it_was(
    sandbox: SandboxServer, db_url: str, tmp_path: Path
) -> None:
    unknown_sub = "SANOSUCHSUBACCOUNT01"
    path = tmp_path / "desired.csv"
    path.write_text(f"phone_number,alias,subaccount\n{C},,{unknown_sub}\n")
    applied = runner.invoke(app, ["reconcile", "--desired", str(path), "--apply"])
    assert applied.exit_code == 1, applied.output
    assert "invalid subaccount" in applied.output
    known = {k.phone_number: k for k in load_known(db_url, DEFAULT_AUTH_ID)}
    assert known[C].subaccount is None
    with open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        reasons = [e.reason or "" for e in uow.events.history(DEFAULT_AUTH_ID, C)]
    assert "refused" in reasons[-1] and "restored" in reasons[-1]
