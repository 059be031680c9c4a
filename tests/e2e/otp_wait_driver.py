"""Run by the UI tests as a separate process against a real Prefect server:

    python tests/e2e/otp_wait_driver.py SANDBOX_URL LEDGER_URL RESULT_JSON NUMBER...

A small parent flow: initiate each number as a voice call on the sandbox, record the live
verification in the ledger, ask a person through `collect_otps_from_person` (the subflow under
test), then match the inbox and complete every code; the result goes to RESULT_JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from prefect import flow

from callerid.inbox import match_new_messages, store
from callerid.ledger import open_ledger
from callerid.plivo import PlivoClient
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
from flows.otp_wait import collect_otps_from_person
from tests.inbox_support import add_number


@flow(name="verify-by-hand")
async def verify_by_hand(
    sandbox_url: str, ledger_url: str, numbers: list[str]
) -> dict[str, object]:
    ledger = open_ledger(ledger_url)
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox_url) as client:
        for number in numbers:
            started = datetime.now(UTC)
            initiation = await client.initiate(number, channel="call")
            with ledger.unit_of_work() as uow:
                add_number(
                    uow.session,
                    number,
                    verification_uuid=initiation.verification_uuid,
                    initiated_at=started,
                    account=DEFAULT_AUTH_ID,
                )
                uow.commit()
        state = await collect_otps_from_person(
            DEFAULT_AUTH_ID,
            numbers,
            timeout_s=int(os.environ.get("CALLERID_TEST_PAUSE_TIMEOUT_S", "600")),
            ledger_url=ledger_url,
            return_state=True,
        )
        collected = await state.result() if state.is_completed() else {"state": state.name}
        with ledger.unit_of_work() as uow:
            matches = match_new_messages(uow, DEFAULT_AUTH_ID, datetime.now(UTC))
        verified = []
        for m in matches:
            caller = await client.complete(m.verification_uuid, m.code, phone_number=m.e164)
            with ledger.unit_of_work() as uow:
                store.mark_used(uow.session, m.message_id, m.e164, m.code)
                uow.commit()
            verified.append(caller.phone_number)
    ledger.close()
    return {"collected": collected, "verified": sorted(verified)}


if __name__ == "__main__":
    sandbox_url, ledger_url, result_path, *numbers = sys.argv[1:]
    result = asyncio.run(verify_by_hand(sandbox_url, ledger_url, numbers))
    Path(result_path).write_text(json.dumps(result))
