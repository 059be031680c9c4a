"""`prefect.yaml` for real: a Prefect server, a process worker, deployed flows in worker
subprocesses, the sandbox as its own process (`callerid sandbox serve`), OTP SMS delivered as
signed webhooks to a receiver in this process that files them in the shared ledger.

`bulk-import` verifies a CSV; then caller IDs are deleted, renamed, moved and added directly in
the sandbox, and an import is left pending; `reconcile-nightly` (its default dry run) must report
every category.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from callerid.ledger import NumberRecord
from callerid.sandbox import DEFAULT_AUTH_ID
from tests.deploy.conftest import POOL
from tests.deploy.stack import PrefectStack
from tests.deploy.world import SA1, SA2, Account, latest_report, run_deployment, write_csv
from tests.e2e.helpers import valid_numbers

pytestmark = pytest.mark.slow


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acct = Account(tmp_path, f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "300/5")
    yield acct
    acct.close()


def test_bulk_import_then_reconcile_reports_every_category(
    prefect_stack: PrefectStack, account: Account, tmp_path: Path
) -> None:
    numbers = valid_numbers(12)
    rows = [
        {"phone_number": n, "alias": f"desk-{i}", "subaccount": SA1 if i < 3 else ""}
        for i, n in enumerate(numbers)
    ]
    csv_path = write_csv(tmp_path / "numbers.csv", rows)
    prefect_stack.start_worker("deploy-worker", POOL, account.env)  # boots while we set up
    print(account.setup_prefect(prefect_stack))

    run_deployment(
        prefect_stack,
        "bulk-verify/bulk-import",
        {"csv_path": csv_path, "follow_sandbox_clock": True, "poll_interval_s": 0.2},
    )
    assert set(account.statuses().values()) == {"verified"}, account.statuses()

    # Behind the ledger's back: 2 deleted, 2 renamed, 1 moved, 2 strangers, 1 import pending.
    lost, renamed, moved = numbers[3:5], numbers[5:7], numbers[0]
    for n in lost:
        account.api("DELETE", f"/{n.lstrip('+')}/")
    for n in renamed:
        account.api("POST", f"/{n.lstrip('+')}/", json={"alias": "renamed by hand"})
    account.api("POST", f"/{moved.lstrip('+')}/", json={"subaccount": SA2})
    extras = valid_numbers(2, prefix="+1212555")
    seeded = httpx.post(
        f"{account.url}/_sandbox/caller_ids",
        json={"caller_ids": [{"phone_number": n, "alias": "stranger"} for n in extras]},
        timeout=10,
    )
    assert seeded.status_code == 201
    pending = valid_numbers(1, prefix="+1646555")[0]
    with account.ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(DEFAULT_AUTH_ID, [NumberRecord(pending)], None, datetime.now(UTC))
        uow.commit()

    run_deployment(prefect_stack, "reconcile/reconcile-nightly", {})
    report = latest_report(account.output_dir)
    assert sorted(report["lost"]) == sorted(lost)
    assert sorted(report["alias_drift"]) == sorted(renamed)
    assert report["subaccount_drift"] == [moved]
    assert sorted(report["extra"]) == sorted(extras)
    assert report["pending"] == [pending]
    assert len(report["verified"]) == 12 - 2 - 2 - 1
    assert account.api("GET", f"/{renamed[0].lstrip('+')}/").json()["alias"] == "renamed by hand"
    summary = prefect_stack.artifact("reconcile-summary")
    assert summary is not None and "dry run" in summary["data"]

    # (apply and prune are exercised by tests/e2e/test_reconcile_flow.py; here the schedule)
    nightly = prefect_stack.api("GET", "/deployments/name/reconcile/reconcile-nightly")
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["30 2 * * *"]
    assert nightly["parameters"] == {"apply": False, "prune": False, "requeue_lost": False}
    assert account.stats()["rate_limited"] == 0
