"""`collect-otps-from-person`: a Prefect UI form for the codes no inbox will see.

One pause per batch, inside this small subflow: a pause that times out fails its flow run
(prefect-notes §1), and this way only this subflow's. While paused, a background thread resumes the
run as soon as every number has a code in the inbox (an SMS, a mailbox, a file, or
`callerid otp submit`). What the person types lands in the inbox table as source `ui`; the
caller's matcher and completer take it from there.

Prefect keeps what the form sent as the run's input (`paused-<key>-response`): once read, it is
deleted, so no code outlives its use on the Prefect server (issue 13).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import flow, get_client, get_run_logger
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import apause_flow_run
from prefect.input.run_input import run_input_subclass_from_type
from prefect.runtime import flow_run

from callerid.inbox.form import describe, otp_form_model, summary, typed_codes
from tasks.inbox import InboxResumer, record_typed_codes_task, waiting_task

# Keys Prefect stores a paused run's answer under (`keyset_from_paused_state`).
_RESPONSE_SUFFIX = "-response"
MIN_WAIT_S = 30
DEFAULT_WAIT_S = 900  # the OTP window, when the ledger cannot say


async def forget_answers(run_id: UUID) -> int:
    """Delete every pause answer stored for `run_id` (the typed codes); returns how many."""
    deleted = 0
    async with get_client() as client:
        inputs = await client.filter_flow_run_input(run_id, "paused-", 100, set())
        for item in inputs:
            if item.key.endswith(_RESPONSE_SUFFIX):
                try:
                    await client.delete_flow_run_input(run_id, item.key)
                except ObjectNotFound:  # gone already
                    continue
                deleted += 1
    return deleted


@flow(name="collect-otps-from-person", log_prints=False)
async def collect_otps_from_person(
    account: str,
    numbers: list[str],
    timeout_s: int | None = None,
    ledger_url: str | None = None,
    poll_interval_s: int = 1,
) -> dict[str, Any]:
    """Ask a person for the codes of `numbers`; by default wait until their windows close."""
    logger = get_run_logger()
    waiting, window = waiting_task(account, numbers, ledger_url)
    if not waiting:
        return {"asked": [], "typed": [], "resumed_by": None}
    if timeout_s is None:
        left = (window - datetime.now(UTC)).total_seconds() if window else DEFAULT_WAIT_S
        timeout_s = max(MIN_WAIT_S, math.ceil(left))
    run_id = flow_run.get_id()  # captured here: the resumer thread has no flow-run context
    if run_id is None:  # a flow always has one; say so plainly if that ever changes
        raise RuntimeError("collect_otps_from_person needs a flow run id")
    form = run_input_subclass_from_type(otp_form_model(waiting))
    resumer = InboxResumer(UUID(run_id), ledger_url, account, waiting, interval_s=poll_interval_s)
    resumer.start()
    logger.info("waiting up to %d s for codes of %d numbers", timeout_s, len(waiting))
    try:
        answer = await apause_flow_run(
            # prefect's own annotation of this classmethod confuses mypy; the call is as documented
            wait_for_input=form.with_initial_data(  # type: ignore[misc]
                description=describe(waiting, window)
            ),
            timeout=timeout_s,
            poll_interval=poll_interval_s,
        )
    finally:
        resumer.stop()
        try:
            await forget_answers(UUID(run_id))
        except Exception as exc:  # must not hide why the pause ended; the codes are dead soon
            logger.warning("could not delete the form's answers: %s", type(exc).__name__)
    codes = typed_codes(answer) if answer is not None else {}
    if codes:
        logger.info("codes typed for %s", summary(codes))
        record_typed_codes_task(account, codes, str(run_id), ledger_url)
    resumed_by = "inbox" if resumer.resumed and not codes else "person"
    return {"asked": waiting, "typed": sorted(codes), "resumed_by": resumed_by}
