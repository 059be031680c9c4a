"""The pipeline without Prefect (`run_plain`) against the sandbox over HTTP: the cases where an
API call's outcome is unknown, and the ledger must wait instead of sending a second OTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import open_ledger
from callerid.pipeline import PipelineOptions
from callerid.pipeline.plain import run_plain
from callerid.sandbox import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    Fault,
    FaultKind,
    Operation,
    SandboxServer,
)
from callerid.settings import load_settings
from tests.e2e.helpers import (
    ClockDriver,
    read_csv,
    reinitiated_while_live,
    sandbox_env,
    valid_numbers,
    write_csv,
)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    clock = OffsetClock()
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    with open_ledger(url) as ledger:
        inbox = WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock)
        server = SandboxServer(inbox_url=inbox.url, reply_delay_s=0.1, clock=clock, seed=3)
        with inbox, server:
            for key, value in sandbox_env(server.url, url, tmp_path / "out").items():
                monkeypatch.setenv(key, value)
            yield server


def _run(csv_path: Path, run_id: str) -> dict[str, object]:
    options = PipelineOptions(poll_interval_s=0.1, max_attempts=2)
    result = asyncio.run(
        run_plain(csv_path, load_settings(), options, run_id=run_id, follow_sandbox_clock=True)
    )
    return result.as_dict()


def test_an_initiate_with_unknown_outcome_waits_out_its_window_then_verifies(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    numbers = valid_numbers(6, prefix="+1646555")
    csv_path = write_csv(tmp_path / "n.csv", ({"phone_number": n} for n in numbers))
    # The first initiate is processed (its OTP goes out and is answered) but its response is
    # held until the client gives up: the pipeline cannot know the verification_uuid.
    sandbox.faults.add(
        Fault(FaultKind.TIMEOUT_AFTER_PROCESSING, delay_s=None, operation=Operation.INITIATE)
    )
    # Quiet for longer than the client's 10 s timeout: never move the clock under a call in flight.
    driver = ClockDriver(sandbox.url, quiet_s=12.0)
    driver.start()
    try:
        result = _run(csv_path, "unknown-outcome")
    finally:
        driver.stop()
    rows = read_csv(Path(str(result["results_csv"])))
    assert [r["status"] for r in rows] == ["verified"] * len(numbers)
    sent = sandbox.backend.messages()
    per_number = {n: sum(1 for m in sent if m.phone_number == n) for n in numbers}
    assert sorted(per_number.values()) == [1] * (len(numbers) - 1) + [2]
    assert reinitiated_while_live([m.to_json() for m in sent]) == {}
    assert driver.advances >= 1  # the second OTP waited for the first one's window to end
