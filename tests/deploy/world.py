"""What a deployed run talks to: the sandbox process, a webhook receiver filing OTP SMS into the
shared ledger, and the worker environment pointing at both; plus run helpers."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from callerid.inbox import WebhookServer
from callerid.ledger import Ledger, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
from tests.deploy.stack import ROOT, PrefectStack, Proc, free_port, sandbox_process

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
            tmp,
            self.port,
            rate,
            ["--inbox-url", self.inbox.url, "--reply-delay-s", "0.2", "--default-subaccounts"],
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
            [
                *(sys.executable, "-c", "from callerid.cli import main; main()"),
                *("setup-prefect", "--work-pool", "callerid-process"),
            ],
            cwd=ROOT,
            env={**stack.env, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "work pool callerid-process: exists" in done.stdout  # the fixture made it
        return done.stdout


def write_csv(path: Path, rows: list[dict[str, str]]) -> str:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["phone_number", "alias", "subaccount"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def run_deployment(stack: PrefectStack, deployment: str, params: dict[str, Any]) -> dict[str, Any]:
    run_id = stack.create_flow_run(deployment, params)
    run = stack.wait_flow_run(run_id, RUN_TIMEOUT_S)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{stack.logs_of(run_id)}"
    print(f"{deployment}: {timing(run)}")
    return run


def _at(run: dict[str, Any], key: str) -> datetime:
    value = run.get(key)  # unset while a run has not started / not ended
    return datetime.fromisoformat(value) if value else datetime.now(UTC)


def timing(run: dict[str, Any]) -> str:
    created, start, end = (_at(run, k) for k in ("created", "start_time", "end_time"))
    waited, ran = (start - created).total_seconds(), (end - start).total_seconds()
    return f"waited {waited:.1f} s, ran {ran:.1f} s"


def latest_report(output_dir: Path) -> dict[str, list[str]]:
    newest = max((output_dir / "reconcile").glob("reconcile-*.csv"))
    by_category: dict[str, list[str]] = {}
    with newest.open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_category.setdefault(row["category"], []).append(row["phone_number"])
    return by_category


def overlap_s(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Seconds both runs were running (a run given up on counts as running until now)."""
    start = max(_at(a, "start_time"), _at(b, "start_time"))
    end = min(_at(a, "end_time"), _at(b, "end_time"))
    return (end - start).total_seconds()
