"""A run always ends with its reports (issue 13): bursts of 429 and 5xx from the sandbox's fault
queue at each step that calls the API, through `run_plain` over real HTTP.

The bursts outlast the steps' retries (429s are retried until `CALLERID_RATE_LIMITED_DEADLINE_S`,
here 1.5 s; 5xx five times): a step that still fails fails alone, the run writes results.csv,
rejects.csv and summary.md with what the ledger knows and why it is incomplete, no verified result
is lost, and a rerun with the same file (faults gone) finishes the job. Register, expire and the
reports make no API call: a 429 or 5xx cannot reach them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import open_ledger
from callerid.ledger.models import Number
from callerid.pipeline import PipelineOptions
from callerid.pipeline.finish import RunResult
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

NUMBERS = valid_numbers(6, prefix="+1646556")

# step -> (operation, matching requests let through first): a run reads one item of its list to
# check its credentials, then lists its account before the loop (one page for a small account)
# and once more to confirm.
STEPS = {
    "list": (Operation.LIST, 1),
    "initiate": (Operation.INITIATE, 0),
    "complete": (Operation.COMPLETE, 0),
    "confirm": (Operation.LIST, 2),
}
# Steps whose failure ends the run incomplete; the loop's own steps retry number by number.
FAILING_STEP = {"list": "list the account", "confirm": "confirm"}


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    clock = OffsetClock()
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    with open_ledger(url) as ledger:
        inbox = WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock)
        server = SandboxServer(inbox_url=inbox.url, reply_delay_s=0.1, clock=clock, seed=5)
        with inbox, server:
            for key, value in sandbox_env(server.url, url, tmp_path / "out").items():
                monkeypatch.setenv(key, value)
            monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "1.5")
            yield server


def _run(csv_path: Path, run_id: str) -> RunResult:
    options = PipelineOptions(poll_interval_s=0.1, max_attempts=3)
    return asyncio.run(
        run_plain(csv_path, load_settings(), options, run_id=run_id, follow_sandbox_clock=True)
    )


def _statuses(result: RunResult) -> dict[str, dict[str, str]]:
    rows = read_csv(Path(result.results_csv))
    return {r["phone_number"]: r for r in rows if r["phone_number"]}


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_burst_at_any_step_still_writes_the_reports_and_a_rerun_finishes(
    sandbox: SandboxServer, tmp_path: Path, step: str, status: int
) -> None:
    rows = [{"phone_number": n} for n in NUMBERS] + [{"phone_number": "not a number"}]
    csv_path = write_csv(tmp_path / "numbers.csv", rows)
    operation, after = STEPS[step]
    # An initiate answered 5xx is never repeated (its OTP may be out): each costs the number an
    # attempt, so that burst is sized in attempts (8 of 6 numbers x 3), the others in requests.
    count = 8 if (step, status) == ("initiate", 503) else 40
    sandbox.faults.add(
        Fault(FaultKind.STATUS, count=count, status=status, operation=operation, after=after)
    )
    # An initiate answered 5xx may have sent its OTP: the run waits out the window (moved on by
    # the driver once nothing else happens) before sending another.
    driver = ClockDriver(sandbox.url, quiet_s=3.0)
    driver.start()
    try:
        first = _run(csv_path, f"{step}-{status}-first")
    finally:
        driver.stop()

    paths = Path(first.results_csv).parent
    assert {p.name for p in paths.iterdir()} >= {"results.csv", "rejects.csv", "summary.md"}
    assert len(read_csv(Path(first.rejects_csv))) == 1
    before = _statuses(first)
    assert set(before) == set(NUMBERS)  # every number is reported, final or not
    summary = (paths / "summary.md").read_text(encoding="utf-8")
    if step in FAILING_STEP:
        assert any(r.startswith(FAILING_STEP[step]) for r in first.incomplete), first.incomplete
        assert "incomplete" in summary and FAILING_STEP[step] in summary
    else:
        assert first.incomplete == [] and "incomplete" not in summary
    assert first.as_dict()["incomplete"] == first.incomplete

    sandbox.faults.clear()
    second = _run(csv_path, f"{step}-{status}-rerun")
    after_rerun = _statuses(second)
    assert second.incomplete == []
    assert {n: r["status"] for n, r in after_rerun.items()} == dict.fromkeys(NUMBERS, "verified")
    for number, row in before.items():  # nothing verified by the first run is lost
        if row["status"] == "verified":
            assert after_rerun[number]["verification_uuid"] == row["verification_uuid"]
    for number in NUMBERS:  # the sandbox's own record agrees
        assert sandbox.backend.get(DEFAULT_AUTH_ID, number) is not None
    messages = [m.to_json() for m in sandbox.backend.messages()]
    assert reinitiated_while_live(messages) == {}


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("burst", ["short", "long"])
def test_a_burst_at_the_access_check_is_waited_out_or_ends_the_run_with_reports(
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    burst: str,
) -> None:
    """The one-item page that checks the credentials before any number is registered. A short
    burst is retried through (429s until the deadline, paced by the limiter; 5xx within the
    attempts); a longer one ends the run before any number is touched, with its reports saying
    why. Before: the check had two attempts in all, so a burst of two ended the run."""
    rows = [{"phone_number": n} for n in NUMBERS]
    csv_path = write_csv(tmp_path / "numbers.csv", rows)
    count = 3 if burst == "short" else 200
    if burst == "short":  # three 429s back off ~1.75-3.5 s in all: past the fixture's 1.5 s
        monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "20")
    sandbox.faults.add(
        Fault(FaultKind.STATUS, count=count, status=status, operation=Operation.LIST)
    )
    first = _run(csv_path, f"access-{status}-{burst}")
    paths = Path(first.results_csv).parent
    assert {p.name for p in paths.iterdir()} >= {"results.csv", "rejects.csv", "summary.md"}
    if burst == "short":
        assert first.incomplete == []
        assert {n: r["status"] for n, r in _statuses(first).items()} == dict.fromkeys(
            NUMBERS, "verified"
        )
        return
    said = "kept answering 429 (rate limited)" if status == 429 else f"answered HTTP {status}"
    assert len(first.incomplete) == 1 and said in first.incomplete[0], first.incomplete
    summary = (paths / "summary.md").read_text(encoding="utf-8")
    assert "incomplete" in summary and said in summary
    assert sandbox.backend.messages() == []  # no OTP sent
    assert _ledger_numbers() == 0  # no number registered

    sandbox.faults.clear()
    second = _run(csv_path, f"access-{status}-{burst}-rerun")
    assert second.incomplete == []
    assert {n: r["status"] for n, r in _statuses(second).items()} == dict.fromkeys(
        NUMBERS, "verified"
    )


def _ledger_numbers() -> int:
    with (
        open_ledger(load_settings().resolved_database_url()) as ledger,
        ledger.unit_of_work() as uow,
    ):
        return int(uow.session.execute(select(func.count()).select_from(Number)).scalar_one())
