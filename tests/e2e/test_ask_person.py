"""`ask_person`: numbers whose code no inbox will see (voice calls) are put in front of a person.

The flow pauses a `collect-otps-from-person` subflow with a form listing them; the person here
answers from the CLI side (`callerid otp submit`'s function), the subflow's inbox watcher resumes
the pause, and the flow completes the codes. The flow runs in a thread: this test is the person.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from callerid.inbox.manual import submit_code
from callerid.people.announce import read
from callerid.sandbox import DEFAULT_AUTH_ID
from tests.e2e.conftest import World
from tests.e2e.helpers import read_csv, sandbox_json, valid_numbers, write_csv

pytestmark = pytest.mark.slow


def _runs(api: str, flow_name: str, state: str) -> list[dict[str, Any]]:
    body = {
        "flows": {"name": {"any_": [flow_name]}},
        "flow_runs": {"state": {"type": {"any_": [state]}}},
    }
    response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return list(response.json())


def test_voice_numbers_are_asked_for_and_verified_with_the_typed_codes(
    prefect_api: str, world: World, tmp_path: Path
) -> None:
    from flows.bulk_verify import bulk_verify

    numbers = valid_numbers(3, prefix="+1617555")
    for number in numbers:
        world.sandbox.network.set_behaviour(number, "silent")  # the person hears the code
    csv_path = write_csv(tmp_path / "voice.csv", ({"phone_number": n} for n in numbers))
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(
                bulk_verify(
                    str(csv_path),
                    channel="call",
                    ask_person=True,
                    follow_sandbox_clock=True,
                    shared_rate_limit=False,
                    poll_interval_s=0.2,
                )
            )
        except BaseException as exc:
            box["error"] = exc

    context = contextvars.copy_context()  # the harness's settings, in the flow's thread
    thread = threading.Thread(target=context.run, args=(run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not _runs(prefect_api, "collect-otps-from-person", "PAUSED"):
        assert thread.is_alive(), box
        assert time.monotonic() < deadline, "the flow never asked for the codes"
        time.sleep(0.5)

    heard = sandbox_json(world.sandbox.url, "messages")["messages"]
    assert {m["phone_number"] for m in heard} == set(numbers)
    with world.ledger.unit_of_work() as uow:
        for message in heard:
            submit_code(uow.session, DEFAULT_AUTH_ID, message["phone_number"], message["otp"])
        uow.commit()

    thread.join(120)
    assert not thread.is_alive() and "error" not in box, box
    rows = read_csv(Path(box["result"]["results_csv"]))
    assert [r["status"] for r in rows] == ["verified"] * 3
    assert all(world.caller_id(n) is not None for n in numbers)
    assert _runs(prefect_api, "collect-otps-from-person", "COMPLETED")
    # `callerid run` printed one line when the form appeared (no UI link: no server's UI here).
    (waiting,) = read(Path(box["result"]["results_csv"]).parent)
    assert waiting.line() == (
        "Waiting for a person: 3 numbers need a code typed; `callerid otp submit NUMBER CODE`"
    )
