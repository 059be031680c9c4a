"""A run killed during its completions, and the rerun (issue 13, "never waste a waiting code").

The killed run claimed its codes (numbers `completing`) and had submitted some of them when it
died; the others' codes wait in the inbox. The rerun must resume those rows as soon as their
grace is over (not when their window ends: with one attempt they would fail) and complete them
with the waiting codes, and the codes the killed run did use must end `used`, not `unmatched`.
Real sandbox and webhook receiver over HTTP, one shared clock; SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import sqlalchemy as sa

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import Ledger, NumberStatus, open_ledger
from callerid.ledger.models import InboxMessage
from callerid.pipeline import PipelineOptions, account, ledger_ops, steps
from callerid.pipeline.options import RunPaths
from callerid.pipeline.session import Pipeline
from callerid.plivo import PlivoClient, RateLimiter
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxServer
from tests.e2e.helpers import valid_numbers


def make_pipeline(
    url: str, ledger: Ledger, clock: OffsetClock, tmp_path: Path, run_id: str, numbers: list[str]
) -> Pipeline:
    client = PlivoClient(
        DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, base_url=url, limiter=RateLimiter(200, 1.0)
    )
    pipeline = Pipeline(
        account=DEFAULT_AUTH_ID,
        ledger=ledger,
        client=client,
        clock=clock,
        run_id=run_id,
        options=PipelineOptions(max_attempts=1),
        paths=RunPaths.for_run(tmp_path, run_id),
    )
    pipeline.e164s = numbers
    return pipeline


def messages(ledger: Ledger) -> dict[str, str]:
    with ledger.unit_of_work() as uow:
        rows = uow.session.execute(sa.select(InboxMessage.from_number, InboxMessage.status))
        return {f"+{sender.lstrip('+')}": status for sender, status in rows}


def wait_for_replies(ledger: Ledger, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(messages(ledger)) < count:
        assert time.monotonic() < deadline, "the sandbox's replies never reached the inbox"
        time.sleep(0.05)


def test_a_rerun_resumes_killed_completions_after_their_grace_and_uses_their_codes(
    db_url: str, tmp_path: Path
) -> None:
    numbers = valid_numbers(10, prefix="+1646555")
    clock = OffsetClock()
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    with (
        open_ledger(db_url) as ledger,
        WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock) as inbox,
        SandboxServer(inbox_url=inbox.url, reply_delay_s=0.05, clock=clock, seed=7) as sandbox,
    ):
        killed = make_pipeline(sandbox.url, ledger, clock, tmp_path, "killed", numbers)
        rerun = make_pipeline(sandbox.url, ledger, clock, tmp_path, "rerun", numbers)

        async def killed_run() -> set[str]:
            async with killed.client:
                with ledger.unit_of_work() as uow:
                    rows = [{"e164": n} for n in numbers]
                    uow.numbers.upsert_many(DEFAULT_AUTH_ID, rows, "killed", clock.now())
                    uow.commit()
                await steps.initiate_batch(killed, len(numbers))
                await asyncio.to_thread(wait_for_replies, ledger, len(numbers))
                codes = ledger_ops.claim_matched(killed, clock.now())
                assert len(codes) == len(numbers)
                for code in codes[:4]:  # these went through before the kill...
                    await killed.client.complete(code.verification_uuid, code.code)
                # ... and nothing was recorded: killed.
                return {c.e164 for c in codes[:4]}

        async def rerun_run() -> dict[str, str]:
            async with rerun.client:
                await account.sync_listed(rerun)  # the four are listed: verified
                assert await account.recover(rerun) == steps.StepResult()  # too fresh yet
                await steps.complete_matched(rerun)  # a matcher pass; the six are completing
                used_codes = messages(ledger)
                clock.advance(31)  # their grace is over, their windows are not
                work = ledger_ops.work(rerun, steps.decision_time(rerun))
                assert work.due == 6
                assert (await steps.expire_due(rerun)).counts == {"resumed": 6}
                await steps.complete_matched(rerun)
                return used_codes

        submitted = asyncio.run(killed_run())
        used_codes = asyncio.run(rerun_run())
        statuses = ledger_ops.statuses(rerun, numbers)
    assert {used_codes[n] for n in submitted} == {"used"}  # not "unmatched"
    assert {used_codes[n] for n in set(numbers) - submitted} == {"new"}  # they wait
    assert statuses == {n: NumberStatus.VERIFIED.value for n in numbers}
