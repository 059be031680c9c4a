"""`prefect.yaml` for real: a Prefect server, process workers, deployed flows in worker
subprocesses, the sandbox as its own process (`callerid sandbox serve`), OTP SMS delivered as
signed webhooks to a receiver in this process that files them in the shared ledger.

1. `bulk-import` verifies a CSV; then caller IDs are deleted, renamed, moved and added directly
   in the sandbox; `reconcile-nightly` (dry run, then apply + prune) must report every category.
2. Two workers run two imports for the same account at once: the shared global concurrency limit
   keeps them under the account limit, so the sandbox never answers 429.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from callerid.inbox import WebhookServer
from callerid.ledger import Ledger, NumberRecord, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
from tests.deploy.conftest import POOL
from tests.deploy.stack import ROOT, PrefectStack, Proc, free_port, sandbox_process
from tests.e2e.helpers import valid_numbers

pytestmark = pytest.mark.slow

SA1, SA2 = "SASANDBOXSUBACCT0001", "SASANDBOXSUBACCT0002"
RUN_TIMEOUT_S = 240


class Account:
    """The sandbox process, the webhook receiver and the env a worker needs for them."""

    def __init__(self, tmp: Path, database_url: str, rate: str, **extra_env: str) -> None:
        self.database_url = database_url
        self.output_dir = tmp / "out"
        self.ledger: Ledger = open_ledger(database_url)
        tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
        self.inbox = WebhookServer(self.ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN)
        self.inbox.start()
        self.port = free_port()
        self.sandbox: Proc = sandbox_process(
            tmp, self.port, rate, ["--inbox-url", self.inbox.url, "--reply-delay-s", "0.2"]
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PLIVO_AUTH_ID": DEFAULT_AUTH_ID,
            "PLIVO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "PLIVO_API_URL": self.url,
            "CALLERID_DATABASE_URL": database_url,
            "CALLERID_OUTPUT_DIR": str(self.output_dir),
            **extra_env,
        }

    def close(self) -> None:
        self.sandbox.stop()
        self.inbox.stop()
        self.ledger.close()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
        root = f"{self.url}/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId"
        response = httpx.request(method, f"{root}{path}", auth=auth, timeout=10, **kwargs)
        response.raise_for_status()
        return response

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_sandbox/stats", timeout=10).json())

    def statuses(self) -> dict[str, str]:
        with self.ledger.unit_of_work() as uow:
            return {n.e164: n.status for n in uow.numbers.by_status(DEFAULT_AUTH_ID)}

    def setup_prefect(self, stack: PrefectStack) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from callerid.cli import main; main()", "setup-prefect"],
            cwd=ROOT,
            env={**stack.env, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    acct = Account(tmp_path, f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "300/5")
    yield acct
    acct.close()


def _write_csv(path: Path, rows: list[dict[str, str]]) -> str:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phone_number", "alias", "subaccount"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _run(stack: PrefectStack, deployment: str, params: dict[str, Any]) -> dict[str, Any]:
    run_id = stack.create_flow_run(deployment, params)
    run = stack.wait_flow_run(run_id, RUN_TIMEOUT_S)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{stack.logs_of(run_id)}"
    return run


def _latest_report(output_dir: Path) -> dict[str, list[str]]:
    newest = max((output_dir / "reconcile").glob("reconcile-*.csv"))
    by_category: dict[str, list[str]] = {}
    with newest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_category.setdefault(row["category"], []).append(row["phone_number"])
    return by_category


def test_bulk_import_then_reconcile_reports_every_category(
    prefect_stack: PrefectStack, account: Account, tmp_path: Path
) -> None:
    numbers = valid_numbers(12)
    rows = [
        {"phone_number": n, "alias": f"desk-{i}", "subaccount": SA1 if i < 3 else ""}
        for i, n in enumerate(numbers)
    ]
    csv_path = _write_csv(tmp_path / "numbers.csv", rows)
    print(account.setup_prefect(prefect_stack))
    prefect_stack.start_worker("deploy-worker", POOL, account.env)

    _run(
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

    _run(prefect_stack, "reconcile/reconcile-nightly", {})
    report = _latest_report(account.output_dir)
    assert sorted(report["lost"]) == sorted(lost)
    assert sorted(report["alias_drift"]) == sorted(renamed)
    assert report["subaccount_drift"] == [moved]
    assert sorted(report["extra"]) == sorted(extras)
    assert report["pending"] == [pending]
    assert len(report["verified"]) == 12 - 2 - 2 - 1
    assert account.api("GET", f"/{renamed[0].lstrip('+')}/").json()["alias"] == "renamed by hand"
    summary = prefect_stack.artifact("reconcile-summary")
    assert summary is not None and "dry run" in summary["data"]

    _run(prefect_stack, "reconcile/reconcile-nightly", {"apply": True, "prune": True})
    assert account.api("GET", f"/{renamed[0].lstrip('+')}/").json()["alias"] == "desk-5"
    assert account.api("GET", f"/{moved.lstrip('+')}/").json()["subaccount"] == SA1
    listed = {
        o["phone_number"] for o in account.api("GET", "/", params={"limit": 20}).json()["objects"]
    }
    assert not listed & set(extras)
    assert account.stats()["rate_limited"] == 0


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    start = max(datetime.fromisoformat(a["start_time"]), datetime.fromisoformat(b["start_time"]))
    end = min(datetime.fromisoformat(a["end_time"]), datetime.fromisoformat(b["end_time"]))
    return (end - start).total_seconds()


def test_two_workers_share_the_account_limit(
    prefect_stack: PrefectStack, pg_url: str, tmp_path: Path
) -> None:
    # A small account (40 requests per 2 s) so that two imports at full in-process speed
    # (each ~19.6 requests/s) would exceed it about twice over.
    limits = {"CALLERID_RATE_LIMIT_REQUESTS": "40", "CALLERID_RATE_LIMIT_PERIOD_S": "2"}
    acct = Account(tmp_path, pg_url, "40/2", **limits)
    try:
        print(acct.setup_prefect(prefect_stack))
        workers = [
            prefect_stack.start_worker(f"import-worker-{i}", POOL, acct.env, limit=1)
            for i in (1, 2)
        ]
        batches = [valid_numbers(40, prefix=p) for p in ("+1312555", "+1415555")]
        paths = [
            _write_csv(
                tmp_path / f"import-{i}.csv",
                [{"phone_number": n, "alias": "", "subaccount": ""} for n in batch],
            )
            for i, batch in enumerate(batches)
        ]
        params = {"follow_sandbox_clock": True, "poll_interval_s": 0.2}
        ids = [
            prefect_stack.create_flow_run("bulk-verify/bulk-import", {"csv_path": p, **params})
            for p in paths
        ]
        runs = [prefect_stack.wait_flow_run(i, RUN_TIMEOUT_S) for i in ids]
        for run_id, run in zip(ids, runs, strict=True):
            assert run["state_type"] == "COMPLETED", prefect_stack.logs_of(run_id)
        stats = acct.stats()
        assert stats["rate_limited"] == 0, stats
        assert stats["total_requests"] >= 2 * 80  # an initiate and a complete per number at least
        assert set(acct.statuses().values()) == {"verified"}
        assert _overlap(*runs) > 5, "the two imports did not run at the same time"
        handled = [sum(i in w.log.read_text() for i in ids) for w in workers]
        assert handled == [1, 1], handled  # one run each: two processes, one bucket
    finally:
        acct.close()
