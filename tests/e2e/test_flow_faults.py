"""The flow under a 429 burst at its final confirm listing (issue 13's report): the burst
outlasts the retry deadline, yet results.csv, summary.md and the summary artifact are written,
the run fails (exit 1) saying why, and a rerun finishes the job."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callerid.pipeline.finish import RunIncompleteError
from callerid.sandbox import DEFAULT_AUTH_ID, Fault, FaultKind, Operation
from tests.e2e.conftest import World
from tests.e2e.helpers import read_csv, valid_numbers, write_csv

NUMBERS = valid_numbers(5, prefix="+1646557")


def _flow(csv_path: Path, run_id: str) -> dict[str, object]:
    from flows.bulk_verify import bulk_verify

    return asyncio.run(
        bulk_verify(
            str(csv_path),
            run_id=run_id,
            follow_sandbox_clock=True,
            shared_rate_limit=False,
            poll_interval_s=0.2,
        )
    )


def test_a_429_burst_at_the_confirm_listing_still_ends_with_reports_and_artifact(
    prefect_api: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.artifacts import Artifact

    monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "1.5")
    csv_path = write_csv(tmp_path / "numbers.csv", ({"phone_number": n} for n in NUMBERS))
    # The access check's one-item page and the listing before the loop go through; the
    # confirming one meets 429s for longer than the deadline.
    world.sandbox.faults.add(
        Fault(FaultKind.STATUS, count=200, status=429, operation=Operation.LIST, after=2)
    )
    with pytest.raises(RunIncompleteError) as caught:
        _flow(csv_path, "confirm-429-first")
    incomplete = caught.value
    assert [r.split(":")[0] for r in incomplete.reasons] == ["confirm"]
    assert "RateLimitedError" in incomplete.reasons[0]
    results = Path(str(incomplete.result["results_csv"]))
    rows = {r["phone_number"]: r for r in read_csv(results)}
    assert {n: rows[n]["status"] for n in NUMBERS} == dict.fromkeys(NUMBERS, "verified")
    summary = results.with_name("summary.md").read_text(encoding="utf-8")
    assert "incomplete" in summary and "confirm" in summary
    artifact = Artifact.get("bulk-verify-summary")
    assert artifact is not None and "confirm-429-first" in str(artifact.data)
    assert "incomplete" in str(artifact.data)

    world.sandbox.faults.clear()
    second = _flow(csv_path, "confirm-429-rerun")
    assert second["incomplete"] == []
    rerun_rows = read_csv(Path(str(second["results_csv"])))
    assert {r["phone_number"]: r["status"] for r in rerun_rows} == dict.fromkeys(
        NUMBERS, "verified"
    )
    for number in NUMBERS:
        assert world.sandbox.backend.get(DEFAULT_AUTH_ID, number) is not None
        assert (
            rerun_rows[NUMBERS.index(number)]["verification_uuid"]
            == (rows[number]["verification_uuid"])
        )
