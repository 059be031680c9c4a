"""The flow under bursts of 429 and 5xx from the sandbox's fault queue at each step that calls the
API in turn (issue 13): the access check, the listing before the loop, the initiates, the
completions and the confirming listing. Whatever the step, the run writes results.csv,
summary.md and the summary artifact, saying why it is incomplete if it is; no verified result is
lost; and a rerun with the same file, the faults gone, finishes the job.

The bursts outlast the retries (429s are retried until CALLERID_RATE_LIMITED_DEADLINE_S, here
1.5 s; 5xx five times), except in the loop, which retries number by number. Register, expire and
the reports make no API call: a 429 or a 5xx cannot reach them (the same cases without Prefect:
tests/integration/test_pipeline_faults.py). All on the session's one Prefect test server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from callerid.ledger.models import Number
from callerid.pipeline.environment import PlivoAccessError
from callerid.pipeline.finish import RunIncompleteError
from callerid.sandbox import DEFAULT_AUTH_ID, Fault, FaultKind, Operation
from tests.e2e.conftest import World
from tests.e2e.helpers import (
    ClockDriver,
    read_csv,
    reinitiated_while_live,
    valid_numbers,
    write_csv,
)

NUMBERS = valid_numbers(5, prefix="+1646557")

# step -> (operation, matching requests let through first): the access check reads one item of
# the list, then the run lists its account before the loop and once more to confirm.
STEPS = {
    "access": (Operation.LIST, 0),
    "list": (Operation.LIST, 1),
    "initiate": (Operation.INITIATE, 0),
    "complete": (Operation.COMPLETE, 0),
    "confirm": (Operation.LIST, 2),
}
# What the run says when that step failed: a step's name, or the access check's own line.
FAILED_STEP = {
    ("access", 429): "kept answering 429 (rate limited)",
    ("access", 503): "answered HTTP 503",
    ("list", 429): "list the account: RateLimitedError",
    ("list", 503): "list the account: ServerError",
    ("confirm", 429): "confirm: RateLimitedError",
    ("confirm", 503): "confirm: ServerError",
}

# Bursts just long enough (the run's time goes on retrying them): 429s are cut by the deadline,
# so a long burst costs little; five 5xx outlast a listing's attempts. An initiate answered 5xx
# is never repeated (its OTP may be out): each costs the number an attempt, so that burst is sized
# in attempts (8 of 5 numbers x 3). In the loop a burst only slows the numbers it meets.
BURST = {
    ("access", 503): 5,
    ("list", 503): 5,
    ("confirm", 503): 5,
    ("initiate", 429): 40,
    ("initiate", 503): 8,
    ("complete", 429): 40,
    ("complete", 503): 10,
}


def _flow(csv_path: Path, run_id: str) -> dict[str, Any]:
    from flows.bulk_verify import bulk_verify

    return asyncio.run(
        bulk_verify(
            str(csv_path),
            run_id=run_id,
            follow_sandbox_clock=True,
            shared_rate_limit=False,
            poll_interval_s=0.2,
            max_attempts=3,
        )
    )


def _first_run(world: World, csv_path: Path, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """The run's outcome (as returned, or as its error carries it) and why it is incomplete."""
    driver = ClockDriver(world.sandbox.url, quiet_s=3.0)  # ends windows an unknown outcome left
    driver.start()
    try:
        return _flow(csv_path, run_id), []
    except RunIncompleteError as exc:
        return exc.result, exc.reasons
    except PlivoAccessError as exc:  # refused before anything: the reports are where they go
        results = world.output_dir / "runs" / run_id / "results.csv"
        return {"results_csv": str(results)}, [str(exc)]
    finally:
        driver.stop()


def _ledger_numbers(world: World) -> int:
    with world.ledger.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(Number)).scalar_one())


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_burst_at_any_step_ends_with_reports_and_artifact_and_a_rerun_finishes(
    prefect_api: str,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    status: int,
) -> None:
    from prefect.artifacts import Artifact

    monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "1.5")
    csv_path = write_csv(tmp_path / "numbers.csv", ({"phone_number": n} for n in NUMBERS))
    operation, after = STEPS[step]
    count = BURST.get((step, status), 200)
    world.sandbox.faults.add(
        Fault(FaultKind.STATUS, count=count, status=status, operation=operation, after=after)
    )
    run_id = f"{step}-{status}-first"
    outcome, reasons = _first_run(world, csv_path, run_id)

    results = Path(str(outcome["results_csv"]))
    summary = results.with_name("summary.md").read_text(encoding="utf-8")
    artifact = Artifact.get("bulk-verify-summary")
    assert artifact is not None and run_id in str(artifact.data)
    expected = FAILED_STEP.get((step, status))
    if expected is None:  # the loop's steps retry number by number: the run completes
        assert reasons == [] and "incomplete" not in summary
    else:
        # the first reason is that step's (a long burst at a listing also fails those after it)
        assert reasons and expected in reasons[0], reasons
        for said in (summary, str(artifact.data)):
            assert "incomplete" in said and expected.split(":")[0] in said
    rows = {r["phone_number"]: r for r in read_csv(results)}
    if step == "access":
        assert _ledger_numbers(world) == 0 and world.sandbox.backend.messages() == []
    else:
        assert set(rows) == set(NUMBERS)  # every number is reported, final or not

    world.sandbox.faults.clear()
    second = _flow(csv_path, f"{step}-{status}-rerun")
    assert second["incomplete"] == []
    rerun = {r["phone_number"]: r for r in read_csv(Path(str(second["results_csv"])))}
    assert {n: r["status"] for n, r in rerun.items()} == dict.fromkeys(NUMBERS, "verified")
    for number, row in rows.items():  # nothing verified by the first run is lost
        if row["status"] == "verified":
            assert rerun[number]["verification_uuid"] == row["verification_uuid"]
    for number in NUMBERS:  # the sandbox's own record agrees
        assert world.caller_id(number) is not None
    messages = [m.to_json() for m in world.sandbox.backend.messages()]
    assert reinitiated_while_live(messages) == {}
    assert world.sandbox.backend.get(DEFAULT_AUTH_ID, NUMBERS[0]) is not None


@pytest.mark.parametrize("status", [429, 503])
def test_a_brief_burst_at_the_access_check_is_waited_out(
    prefect_api: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    """Three 429s are waited out (paced by the limiter, within a deadline of 20 s), three 5xx
    retried through: the run goes on and finishes (before, the check had two attempts in all)."""
    monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "20")
    csv_path = write_csv(tmp_path / "numbers.csv", ({"phone_number": n} for n in NUMBERS))
    world.sandbox.faults.add(
        Fault(FaultKind.STATUS, count=3, status=status, operation=Operation.LIST)
    )
    outcome = _flow(csv_path, f"access-brief-{status}")
    assert outcome["incomplete"] == []
    rows = read_csv(Path(str(outcome["results_csv"])))
    assert {r["phone_number"]: r["status"] for r in rows} == dict.fromkeys(NUMBERS, "verified")
    assert world.sandbox.faults.pending() == []  # the burst was met, and outlasted


def test_a_failure_to_start_the_people_lane_is_contained(
    prefect_api: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting the people lane writes to the ledger (the run's owners): when that fails, the
    run verifies without it, writes its reports and artifact, and says it is incomplete."""
    from prefect.artifacts import Artifact

    import flows.bulk_verify

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(flows.bulk_verify, "start_people", broken)
    csv_path = write_csv(tmp_path / "numbers.csv", ({"phone_number": n} for n in NUMBERS))
    with pytest.raises(RunIncompleteError) as raised:
        _flow(csv_path, "people-broken")
    assert raised.value.reasons == ["people: RuntimeError: database is locked"]
    rows = read_csv(Path(str(raised.value.result["results_csv"])))
    assert {r["phone_number"]: r["status"] for r in rows} == dict.fromkeys(NUMBERS, "verified")
    artifact = Artifact.get("bulk-verify-summary")
    assert artifact is not None and "people-broken" in str(artifact.data)
    assert "people: RuntimeError" in str(artifact.data)
