"""The bulk_verify flow end to end under Prefect's test harness, against the sandbox.

200 numbers: most reply with the right code, some with a wrong one, some never; a few are already
caller IDs of the account; a few rows are rejected. The sandbox clock is moved past the 15-minute
window whenever only waiting is left. Every final state is checked against the sandbox's record.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest

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

N_WRONG, N_NEVER, N_LISTED = 20, 20, 10


def _setup(world: World, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    numbers = valid_numbers(200)
    expected: dict[str, str] = {}
    for i, number in enumerate(numbers):
        if i < N_WRONG:
            behaviour, expected[number] = "wrong_code", "failed"
        elif i < N_WRONG + N_NEVER:
            behaviour, expected[number] = "never", "failed"
        elif i < N_WRONG + N_NEVER + N_LISTED:
            behaviour, expected[number] = "reply", "already_verified"
        else:
            behaviour, expected[number] = "reply", "verified"
        if behaviour != "reply":
            world.sandbox.network.set_behaviour(number, behaviour)
    listed = [n for n, s in expected.items() if s == "already_verified"]
    httpx.post(
        f"{world.sandbox.url}/_sandbox/caller_ids",
        json={"caller_ids": [{"phone_number": n} for n in listed]},
        timeout=10,
    ).raise_for_status()
    rows = [{"phone_number": n[2:], "alias": f"desk {i}"} for i, n in enumerate(numbers)]
    rows += [
        {"phone_number": "not a number", "alias": "bad"},
        {"phone_number": numbers[-1], "alias": "dup"},  # duplicate of the last number
    ]
    return write_csv(tmp_path / "numbers.csv", rows), expected


def test_two_hundred_numbers_reach_the_sandboxs_final_state(
    prefect_api: str, world: World, tmp_path: Path
) -> None:
    from flows.bulk_verify import bulk_verify

    csv_path, expected = _setup(world, tmp_path)
    replying = [n for n, s in expected.items() if s == "verified"]
    # Move the clock only once every number that replies is verified: on a slow machine a quiet
    # moment must not expire a reply still on its way.
    driver = ClockDriver(
        world.sandbox.url,
        quiet_s=2.0,
        ready=lambda: all(world.caller_id(n) is not None for n in replying),
    )
    driver.start()
    try:
        result = asyncio.run(
            bulk_verify(
                str(csv_path),
                max_attempts=2,
                max_in_flight=120,
                batch_size=50,
                follow_sandbox_clock=True,
                shared_rate_limit=False,
                poll_interval_s=0.2,
            )
        )
    finally:
        driver.stop()

    results = read_csv(Path(result["results_csv"]))
    assert len(results) == 202  # every input row, accepted or not
    by_number = {r["phone_number"]: r for r in results if r["phone_number"]}
    assert {n: by_number[n]["status"] for n in expected} == expected
    rejected = [r for r in results if r["status"] == "rejected"]
    assert len(rejected) == 2 and any("duplicate" in r["reason"] for r in rejected)
    assert len(read_csv(Path(result["rejects_csv"]))) == 2
    assert result["not_verified"] == N_WRONG + N_NEVER

    # The sandbox's own record: listed caller IDs and every OTP it sent.
    stats = sandbox_json(world.sandbox.url, "stats")
    assert stats["rate_limited"] == 0
    for number, status in expected.items():
        caller = world.caller_id(number)
        assert (caller is not None) == (status in ("verified", "already_verified")), number
        if status == "verified":
            assert caller is not None
            assert by_number[number]["verification_uuid"] == caller.verification_uuid
        per_number = stats["numbers"].get(number, {"initiations": 0})
        want_initiations = {"verified": 1, "already_verified": 0, "failed": 2}[status]
        assert per_number["initiations"] == want_initiations, number
    messages = sandbox_json(world.sandbox.url, "messages")["messages"]
    assert reinitiated_while_live(messages) == {}
    assert driver.advances >= 2  # both attempts of the silent numbers had to run out

    # What the Prefect UI shows: the summary, the numbers that did not verify, the progress.
    from prefect.artifacts import Artifact

    summary_artifact = Artifact.get("bulk-verify-summary")
    failures = Artifact.get("bulk-verify-failures")
    progress = Artifact.get("bulk-verify-progress")
    assert summary_artifact is not None and "| verified | 150 |" in str(summary_artifact.data)
    assert failures is not None and progress is not None
    failed_rows = json.loads(str(failures.data))
    assert sorted(r["phone_number"] for r in failed_rows if r["status"] != "rejected") == sorted(
        n for n, s in expected.items() if s == "failed"
    )
    # the rejected rows are listed too, with their line and reason
    rejected_rows = [r for r in failed_rows if r["status"] == "rejected"]
    assert len(rejected_rows) == 2 and all(r["line"] and r["reason"] for r in rejected_rows)
    assert float(str(progress.data)) == 100.0

    # No OTP in what a person reads: the reasons, the rejects, the summary.
    codes = {m["otp"] for m in messages}
    summary = Path(result["results_csv"]).with_name("summary.md").read_text(encoding="utf-8")
    texts = [r["reason"] for r in results] + [Path(result["rejects_csv"]).read_text(), summary]
    for text in texts:
        assert not set(re.findall(r"(?<![\d+])\d{4,8}(?!\d)", text)) & codes, text
