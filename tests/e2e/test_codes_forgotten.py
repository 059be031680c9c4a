"""Codes do not outlive their use (issue 13): after a run whose codes came by webhook (SMS),
typed with `callerid otp submit` and typed into the Prefect UI form, neither a dump of the
ledger (every table) nor one of Prefect's own database holds any code the sandbox sent."""

from __future__ import annotations

import asyncio
import contextvars
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy.engine import make_url

from callerid.inbox.form import field_name
from callerid.inbox.manual import submit_code
from callerid.sandbox import DEFAULT_AUTH_ID
from tests.e2e.conftest import World
from tests.e2e.helpers import read_csv, sandbox_json, valid_numbers, write_csv

pytestmark = pytest.mark.slow


def _paused(api: str) -> list[dict[str, Any]]:
    body = {
        "flows": {"name": {"any_": ["collect-otps-from-person"]}},
        "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
    }
    response = httpx.post(f"{api}/flow_runs/filter", json=body, timeout=10)
    response.raise_for_status()
    return list(response.json())


def _dump(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def _codes_in(text: str, codes: set[str]) -> set[str]:
    # A code stands alone: not part of a longer number, a UUID or a timestamp's fraction.
    return {c for c in codes if re.search(rf"(?<![\w.\-]){c}(?![\w.\-])", text)}


def test_no_code_is_left_in_the_ledger_or_prefects_database_after_a_run(
    prefect_api: str, world: World, tmp_path: Path
) -> None:
    from prefect.flow_runs import aresume_flow_run
    from prefect.settings import get_current_settings

    from flows.bulk_verify import bulk_verify

    sms = valid_numbers(2, prefix="+1617556")
    typed, form = valid_numbers(2, prefix="+1617557")
    for number in (typed, form):
        world.sandbox.network.set_behaviour(number, "silent")  # heard by a person
    rows = [{"phone_number": n, "channel": "sms"} for n in sms]
    rows += [{"phone_number": n, "channel": "call"} for n in (typed, form)]
    csv_path = write_csv(tmp_path / "mixed.csv", rows)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(
                bulk_verify(
                    str(csv_path),
                    ask_person=True,
                    follow_sandbox_clock=True,
                    shared_rate_limit=False,
                    poll_interval_s=0.2,
                )
            )
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 180
    while not (paused := _paused(prefect_api)):
        assert thread.is_alive(), box
        assert time.monotonic() < deadline, "the flow never asked for the codes"
        time.sleep(0.5)
    heard = {
        m["phone_number"]: m["otp"]
        for m in sandbox_json(world.sandbox.url, "messages")["messages"]
        if m["phone_number"] in (typed, form)
    }
    with world.ledger.unit_of_work() as uow:  # `callerid otp submit`
        submit_code(uow.session, DEFAULT_AUTH_ID, typed, heard[typed])
        uow.commit()
    # The person types the other code into the UI form (what the form posts).
    asyncio.run(aresume_flow_run(UUID(paused[0]["id"]), run_input={field_name(form): heard[form]}))

    thread.join(180)
    assert not thread.is_alive() and "error" not in box, box
    results = read_csv(Path(box["result"]["results_csv"]))
    assert {r["phone_number"]: r["status"] for r in results} == dict.fromkeys(
        [*sms, typed, form], "verified"
    )

    codes = {m["otp"] for m in sandbox_json(world.sandbox.url, "messages")["messages"]}
    assert len(codes) >= 4
    ledger_file = Path(str(make_url(world.database_url).database))
    assert _codes_in(_dump(ledger_file), codes) == set()
    prefect_db = make_url(get_current_settings().server.database.connection_url.get_secret_value())
    prefect_file = Path(str(prefect_db.database))
    assert prefect_file.exists()
    assert _codes_in(_dump(prefect_file), codes) == set()
