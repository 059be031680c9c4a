"""One account, three processes, a PostgreSQL ledger and no Prefect server (issue 14): the runs'
limiters share the account's budget through the ledger, so together they meet no 429 and still
use at least 90 % of the limit.

Each process opens a run the way `callerid run` does (`open_run`, which picks the limiter) and
sends GETs from eight workers as fast as its limiter lets it; the sandbox runs as its own process
(`callerid sandbox serve --rate 60/10`) and counts every request and every 429.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from callerid.ledger import open_ledger
from callerid.ledger.rate_budget import LedgerBudget
from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

CALLERID = Path(sys.executable).with_name("callerid")
LIMIT, PERIOD = 60, 10.0
MEASURE_S = 30.0  # three windows of the limit
CHILD = """
import asyncio, sys, time
from callerid.pipeline.environment import open_run
from callerid.pipeline.options import PipelineOptions
from callerid.plivo import NotFoundError
from callerid.settings import load_settings

async def main(seconds: float) -> None:
    settings = load_settings()
    async with open_run(settings, PipelineOptions(), run_id=sys.argv[2]) as pipeline:
        print("ready", flush=True)
        sys.stdin.readline()  # "go": all three start together
        end = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                try:
                    await pipeline.client.get("+14155550100")
                except NotFoundError:
                    pass

        await asyncio.gather(*(worker() for _ in range(8)))

asyncio.run(main(float(sys.argv[1])))
"""


def _stats(url: str) -> tuple[float, int, int]:
    body = httpx.get(f"{url}/_sandbox/stats", timeout=30).json()
    return time.monotonic(), int(body["total_requests"]), int(body["rate_limited"])


def test_three_processes_share_the_accounts_budget(pg_url: str, tmp_path: Path) -> None:
    open_ledger(pg_url).close()  # migrated once, before the three open it
    sandbox = subprocess.Popen(
        [str(CALLERID), "sandbox", "serve", "--port", "0", "--rate", f"{LIMIT}/{PERIOD:g}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert sandbox.stdout is not None
    children: list[subprocess.Popen[str]] = []
    try:
        url = sandbox.stdout.readline().rsplit(" ", 1)[1].strip()
        env = {
            **os.environ,
            "PLIVO_AUTH_ID": DEFAULT_AUTH_ID,
            "PLIVO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
            "PLIVO_API_URL": url,
            "CALLERID_DATABASE_URL": pg_url,
            "CALLERID_OUTPUT_DIR": str(tmp_path),
            "CALLERID_RATE_LIMIT_REQUESTS": str(LIMIT),
            "CALLERID_RATE_LIMIT_PERIOD_S": str(PERIOD),
        }
        for i in range(3):
            children.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(MEASURE_S + 8), f"budget-{i}"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        time.sleep(4.0)  # every process at full demand
        start = _stats(url)
        time.sleep(MEASURE_S)
        end = _stats(url)
        for child in children:
            assert child.wait(timeout=120) == 0
        final = _stats(url)
    finally:
        for process in (*children, sandbox):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    rate = (end[1] - start[1]) / (end[0] - start[0])
    assert final[2] == 0, f"{final[2]} requests answered 429"
    assert rate >= 0.9 * LIMIT / PERIOD, f"{rate:.2f} requests/s of {LIMIT / PERIOD:g}"


def test_the_budget_grants_the_limit_per_window_and_says_how_long_to_wait(pg_url: str) -> None:
    with open_ledger(pg_url) as ledger:
        budget = LedgerBudget(ledger.engine, DEFAULT_AUTH_ID, 3, 60.0, margin_s=0.0)
        other = LedgerBudget(ledger.engine, "MAOTHERACCOUNT000001", 3, 60.0, margin_s=0.0)
        assert [budget.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = budget.try_take()
        assert 59.0 < wait <= 60.0
        assert other.try_take() == 0.0  # accounts do not share


def test_sqlite_ledgers_keep_in_process_pacing(tmp_path: Path) -> None:
    from callerid.pipeline.shared_budget import ledger_limiter

    assert ledger_limiter(DEFAULT_AUTH_ID, 30, 5.0, f"sqlite:///{tmp_path / 'l.db'}") is None


@pytest.mark.parametrize("shared", [False])
def test_the_flows_limiter_without_a_prefect_server_is_the_ledgers(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, shared: bool
) -> None:
    from callerid.settings import load_settings
    from tasks.account import account_limiter

    monkeypatch.setenv("PLIVO_AUTH_ID", "MABUDGETACCOUNT00001")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "t")
    monkeypatch.setenv("CALLERID_DATABASE_URL", pg_url)
    limiter = account_limiter(load_settings(), shared=shared)
    assert isinstance(limiter._slot_source, LedgerBudget)
