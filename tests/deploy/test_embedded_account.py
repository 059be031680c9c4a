"""Both deployments on a real Prefect server and process worker with NO credentials: the embedded
sandbox account, persisted beside the ledger (out/sandbox-account.json), is the one account
`bulk-import` verifies into and `reconcile-nightly` reads (issue 11), and `reconcile-nightly` with
`apply=true` keeps what a desired CSV applied (issue 15).

    bulk-import (8 numbers)
    -> reconcile-nightly, desired CSV + apply: 2 aliases and 1 subaccount change on the account and
       in the ledger, 1 rename made on the account by hand is adopted
    -> reconcile-nightly apply=true, then its default dry run: every number verified, nothing
       planned, the account unchanged
    -> a number deleted and one renamed on the sandbox account (another process, the state file)
    -> reconcile-nightly (dry run) finds them: lost and alias_drift
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from callerid.ledger import open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID
from callerid.sandbox.embedded import embedded_backend, state_path
from tests.deploy.conftest import POOL
from tests.deploy.stack import PrefectStack
from tests.deploy.world import run_deployment, write_csv
from tests.e2e.helpers import valid_numbers

pytestmark = pytest.mark.slow
SA1 = "SASANDBOXSUBACCT0001"


def _account(out: Path) -> dict[str, tuple[str, str, str]]:
    """The embedded account as a process opening its state file sees it."""
    backend = embedded_backend(out)
    found: dict[str, tuple[str, str, str]] = {}
    offset = 0
    while True:
        page = backend.list(DEFAULT_AUTH_ID, limit=20, offset=offset)
        found.update(
            {
                c.phone_number: (c.alias, c.subaccount, c.modified_at.isoformat())
                for c in page.objects
            }
        )
        offset += 20
        if offset >= page.total_count:
            return found


def _ledger(out: Path) -> dict[str, tuple[str, str | None, str | None]]:
    with open_ledger(f"sqlite:///{out / 'ledger.sqlite3'}") as ledger, ledger.unit_of_work() as uow:
        rows = uow.numbers.by_status(DEFAULT_AUTH_ID)
        return {r.e164: (r.status, r.alias, r.subaccount) for r in rows}


def _report(out: Path) -> list[dict[str, Any]]:
    newest = max((out / "reconcile").glob("reconcile-*.csv"))
    with newest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_import_then_nightly_reconcile_on_the_embedded_account_without_credentials(
    prefect_stack: PrefectStack, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    numbers = valid_numbers(8, prefix="+1628555")
    rows = [
        {"phone_number": n, "alias": f"desk-{i}", "subaccount": ""} for i, n in enumerate(numbers)
    ]
    csv_path = write_csv(tmp_path / "numbers.csv", rows)
    # no PLIVO_* at all (the stack's env has none): the embedded default
    prefect_stack.start_worker("embedded-worker", POOL, {"CALLERID_OUTPUT_DIR": str(out)})

    run_deployment(
        prefect_stack,
        "bulk-verify/bulk-import",
        {"csv_path": csv_path, "poll_interval_s": 0.2, "sandbox_reply_delay_s": 0.2},
    )
    assert {s for s, _, _ in _ledger(out).values()} == {"verified"}
    assert state_path(out).exists()
    assert set(_account(out)) == set(numbers)  # what the run verified, the account keeps

    # -- issue 15: desired + apply, then plain runs find nothing to do ----------------------
    by_hand = numbers[7]
    embedded_backend(out).update(DEFAULT_AUTH_ID, by_hand, alias="renamed by hand")
    desired = tmp_path / "desired.csv"
    desired.write_text(
        "phone_number,alias,subaccount\n"
        f"{numbers[0]},Charlie New,\n"
        f"{numbers[1]},Bravo New,{SA1}\n"
        f"{numbers[2]},,{SA1}\n"
        f"{by_hand},renamed by hand,\n"
    )
    run_deployment(
        prefect_stack, "reconcile/reconcile-nightly", {"desired_csv": str(desired), "apply": True}
    )
    account = _account(out)
    assert account[numbers[0]][:2] == ("Charlie New", "")
    assert account[numbers[1]][:2] == ("Bravo New", SA1)
    ledger = _ledger(out)
    assert ledger[numbers[1]] == ("verified", "Bravo New", SA1)
    assert ledger[numbers[2]][2] == SA1 and ledger[by_hand][1] == "renamed by hand"

    for params in ({"apply": True}, {}):
        run_deployment(prefect_stack, "reconcile/reconcile-nightly", params)
        report = _report(out)
        assert {r["category"] for r in report} == {"verified"}, report
        assert len(report) == 8 and not [r for r in report if r["action"]], report
    assert _account(out) == account  # nothing changed, not even a modified_at

    # -- issue 11: a change on the account between the runs, found by the nightly run --------
    deleted, renamed = numbers[3], numbers[4]
    other_process = embedded_backend(out)
    other_process.delete(DEFAULT_AUTH_ID, deleted)
    other_process.update(DEFAULT_AUTH_ID, renamed, alias="renamed on the account")

    run_deployment(prefect_stack, "reconcile/reconcile-nightly", {})
    found: dict[str, list[str]] = {}
    for row in _report(out):
        found.setdefault(row["category"], []).append(row["phone_number"])
    assert found["lost"] == [deleted] and found["alias_drift"] == [renamed]
    assert len(found["verified"]) == 6
