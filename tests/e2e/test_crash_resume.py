"""SIGKILL the flow's process mid-run, rerun it, and check the at-most-once promise.

The sandbox and the webhook receiver live in this test's process, so they outlive the killed
flow (as Plivo and a separately deployed receiver would). The first run goes in a child process
at a low rate so that it is killed with initiations in flight; the rerun goes in this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callerid.sandbox import DEFAULT_AUTH_ID
from tests.e2e.conftest import World
from tests.e2e.helpers import (
    ClockDriver,
    read_csv,
    reinitiated_while_live,
    sandbox_json,
    valid_numbers,
    write_csv,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHILD = """
import asyncio, json, sys
from flows.bulk_verify import bulk_verify
asyncio.run(bulk_verify(**json.loads(sys.argv[1])))
"""


def test_sigkill_mid_run_then_rerun_initiates_nothing_twice(
    prefect_api: str, world: World, tmp_path: Path
) -> None:
    numbers = valid_numbers(120, prefix="+1312555")
    never = set(numbers[::4])
    for number in never:
        world.sandbox.network.set_behaviour(number, "never")
    csv_path = write_csv(tmp_path / "crash.csv", ({"phone_number": n} for n in numbers))
    params = {
        "csv_path": str(csv_path),
        "max_in_flight": 60,
        "batch_size": 10,
        "follow_sandbox_clock": True,
        "shared_rate_limit": False,
        "poll_interval_s": 0.2,
        "run_id": "crash-first-run",
    }
    env = {
        **os.environ,
        **world.env,
        "PREFECT_API_URL": prefect_api,
        # Slow enough that the kill lands with initiations both done and still to come.
        "CALLERID_RATE_LIMIT_REQUESTS": "20",
        "CALLERID_RATE_LIMIT_PERIOD_S": "1",
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(params)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while len(sandbox_json(world.sandbox.url, "messages")["messages"]) < 40:
            assert child.poll() is None, (
                child.stderr.read().decode()[-3000:] if child.stderr else ""
            )
            assert time.monotonic() < deadline, "the child never got going"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
        if child.stderr:
            child.stderr.close()
    sent_before = len(sandbox_json(world.sandbox.url, "messages")["messages"])
    assert sent_before < len(numbers), "the child finished before it was killed"
    with world.ledger.unit_of_work() as uow:
        counts = uow.numbers.counts_by_status(DEFAULT_AUTH_ID)
    live = sum(counts[s] for s in ("initiating", "initiated", "completing"))  # type: ignore[index]
    assert live > 0, counts  # the kill left verifications whose OTP may still be valid

    from flows.bulk_verify import bulk_verify

    killed_at = world.sandbox.backend.clock.now()
    replying = [n for n in numbers if n not in never]

    def ready() -> bool:
        """Every number that replies is verified, or waits on what the dead run left behind
        (an OTP it asked for, or an intent row): only the clock ends those waits. So a quiet
        moment never expires a reply still on its way."""
        with world.ledger.unit_of_work() as uow:
            for number in replying:
                if world.caller_id(number) is not None:
                    continue
                sent = world.sandbox.backend.messages(number)
                if sent and max(m.sent_at for m in sent) < killed_at:
                    continue
                row = uow.numbers.get(DEFAULT_AUTH_ID, number)
                if row is None or row.status != "initiating" or row.last_run_id == "crash-rerun":
                    return False
        return True

    driver = ClockDriver(world.sandbox.url, quiet_s=2.0, ready=ready)
    driver.start()
    try:
        result = asyncio.run(bulk_verify(**{**params, "run_id": "crash-rerun"}))
    finally:
        driver.stop()

    messages = sandbox_json(world.sandbox.url, "messages")["messages"]
    assert reinitiated_while_live(messages) == {}
    rows = read_csv(Path(result["results_csv"]))
    assert len(rows) == len(numbers)
    assert {r["status"] for r in rows} <= {"verified", "failed"}
    for row in rows:
        want = "failed" if row["phone_number"] in never else "verified"
        assert row["status"] == want, row
        assert (world.caller_id(row["phone_number"]) is not None) == (want == "verified")
    stats = sandbox_json(world.sandbox.url, "stats")["numbers"]
    assert all(stats[n]["initiations"] <= 2 for n in numbers)
