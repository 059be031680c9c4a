"""Each number's OTP window is stamped from its own request (issue 13, "never a second live OTP").

The sandbox's records are the truth: for every OTP it sent, the ledger's idea of the window must
start no later and end no earlier than the sandbox's, on the normal path (the answer came back)
and on the crash path (only the intent row was written). Against a real sandbox over HTTP, with a
slow client limiter so that one batch is spread out as the issue's repro was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callerid.clock import SystemClock
from callerid.ledger import Ledger, NumberStatus, open_ledger
from callerid.ledger.recovery import Interrupted, window_end
from callerid.pipeline import PipelineOptions, ledger_ops, steps
from callerid.pipeline.options import RunPaths
from callerid.pipeline.session import Pipeline, StepResult
from callerid.plivo import NotSentError, PlivoClient, RateLimiter, parse_timestamp
from callerid.sandbox import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    Fault,
    FaultKind,
    Operation,
    SandboxServer,
)
from tests.e2e.helpers import valid_numbers

RUN = "windows"


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(reply_delay_s=0.1, seed=5) as server:  # no inbox: nobody replies
        yield server


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def make_pipeline(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path, numbers: list[str], rate: int
) -> Pipeline:
    client = PlivoClient(
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        base_url=sandbox.url,
        limiter=RateLimiter(rate, 1.0),
        max_attempts=1,
    )
    pipeline = Pipeline(
        account=DEFAULT_AUTH_ID,
        ledger=ledger,
        client=client,
        clock=SystemClock(),
        run_id=RUN,
        options=PipelineOptions(max_attempts=1),
        paths=RunPaths.for_run(tmp_path, RUN),
    )
    pipeline.e164s = numbers
    with ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(DEFAULT_AUTH_ID, [{"e164": n} for n in numbers], RUN, _now())
        uow.commit()
    return pipeline


def _now() -> datetime:
    return datetime.now(UTC)


def sandbox_windows(sandbox: SandboxServer) -> dict[str, tuple[datetime, datetime]]:
    found: dict[str, tuple[datetime, datetime]] = {}
    for sent in sandbox.backend.messages():
        start = parse_timestamp(sent.to_json()["sent_at"])
        end = parse_timestamp(sent.to_json()["expires_at"])
        assert start is not None and end is not None
        found[sent.phone_number] = (start, end)
    return found


def rows(ledger: Ledger, numbers: list[str]) -> dict[str, Interrupted]:
    with ledger.unit_of_work() as uow:
        return {
            n: Interrupted.of(row)
            for n in numbers
            if (row := uow.numbers.get(DEFAULT_AUTH_ID, n)) is not None
        }


def test_each_number_gets_the_window_of_its_own_request(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path
) -> None:
    numbers = valid_numbers(16, prefix="+1646555")
    pipeline = make_pipeline(sandbox, ledger, tmp_path, numbers, rate=8)  # a batch of ~2 s

    async def go() -> None:
        async with pipeline.client:
            await steps.initiate_batch(pipeline, len(numbers))

    asyncio.run(go())
    truth = sandbox_windows(sandbox)
    assert sorted(truth) == sorted(numbers)
    ours = rows(ledger, numbers)
    for number, (sent_at, expires_at) in truth.items():
        row = ours[number]
        assert row.status is NumberStatus.INITIATED
        assert row.initiated_at is not None and row.expires_at is not None
        assert row.initiated_at <= sent_at, number  # a message older than this is stale
        assert row.expires_at >= expires_at, number  # we never re-initiate before Plivo's end


def test_a_crash_mid_batch_leaves_intent_rows_that_cover_every_otp_sent(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path
) -> None:
    numbers = valid_numbers(16, prefix="+1646555")
    pipeline = make_pipeline(sandbox, ledger, tmp_path, numbers, rate=8)

    async def crash_mid_batch() -> None:
        async with pipeline.client:
            batch = asyncio.create_task(steps.initiate_batch(pipeline, len(numbers)))
            while len(sandbox.backend.messages()) < 12:
                await asyncio.sleep(0.02)
            batch.cancel()  # killed: nothing after the claim is written
            with pytest.raises(asyncio.CancelledError):
                await batch

    asyncio.run(crash_mid_batch())
    truth = sandbox_windows(sandbox)
    assert len(truth) >= 12
    ours = rows(ledger, numbers)
    for number, (_, expires_at) in truth.items():
        row = ours[number]
        assert row.status is NumberStatus.INITIATING
        # what recovery waits for before this number may be initiated again
        assert window_end(row) >= expires_at, number


def test_an_initiate_that_cannot_go_out_by_its_send_deadline_is_not_sent(
    sandbox: SandboxServer,
) -> None:
    numbers = valid_numbers(2, prefix="+1646555")

    async def go() -> None:
        limiter = RateLimiter(1, 5.0)  # the second request could only go 5 s later
        async with PlivoClient(
            DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, base_url=sandbox.url, limiter=limiter
        ) as client:
            await client.initiate(numbers[0], send_by=time.monotonic() + 1.0)
            with pytest.raises(NotSentError):
                await client.initiate(numbers[1], send_by=time.monotonic() + 0.3)

    asyncio.run(go())
    assert [m.phone_number for m in sandbox.backend.messages()] == [numbers[0]]


def test_a_number_failed_after_an_unknown_outcome_keeps_the_cause(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path
) -> None:
    numbers = valid_numbers(1, prefix="+1646555")
    pipeline = make_pipeline(sandbox, ledger, tmp_path, numbers, rate=50)
    sandbox.faults.add(Fault(FaultKind.STATUS, status=503, operation=Operation.INITIATE))

    async def go() -> None:
        async with pipeline.client:
            await steps.initiate_batch(pipeline, 1)

    asyncio.run(go())
    pipeline.listed = set()
    ledger_ops.expire_and_recover(pipeline, _now() + timedelta(minutes=20))
    outcome = ledger_ops.outcomes(pipeline, numbers)[numbers[0]]
    assert outcome.status == NumberStatus.FAILED.value
    assert outcome.last_error is not None
    assert "interrupted while initiating" in outcome.last_error
    assert "HTTP 503" in outcome.last_error  # the cause, not only "interrupted"


def test_a_completion_that_cannot_go_out_in_its_window_keeps_its_code(
    sandbox: SandboxServer, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A completion goes out within COMPLETE_SEND_WINDOW of its claim or not at all: a row left
    `completing` longer may be resumed by another worker's recovery, which would submit the same
    code a second time. Not sent in time: the number is `initiated` again and its code waits."""
    from callerid.inbox import InboundMessage, MessageSource, store
    from callerid.ledger.models import InboxMessage
    from callerid.sandbox.errors import NotFoundError as SandboxNotFound

    numbers = valid_numbers(1, prefix="+1646555")
    pipeline = make_pipeline(sandbox, ledger, tmp_path, numbers, rate=1)  # 1 request a second
    monkeypatch.setattr(steps, "COMPLETE_SEND_WINDOW", timedelta(seconds=0.3))

    async def go() -> StepResult:
        async with pipeline.client:
            await steps.initiate_batch(pipeline, 1)  # the limiter's grant for this second
            code = sandbox.backend.messages(numbers[0])[0].otp
            with ledger.unit_of_work() as uow:
                message = InboundMessage(
                    MessageSource.WEBHOOK, "m1", numbers[0], None, f"code {code}", _now()
                )
                store.insert_message(uow.session, message)
                uow.commit()
            return await steps.complete_matched(pipeline)

    done = asyncio.run(go())
    assert done.attempted == 1 and done.counts == {"initiated": 1}
    with pytest.raises(SandboxNotFound):  # nothing was submitted: no caller ID
        sandbox.backend.get(DEFAULT_AUTH_ID, numbers[0])
    assert rows(ledger, numbers)[numbers[0]].status is NumberStatus.INITIATED
    with ledger.unit_of_work() as uow:
        (status,) = uow.session.query(InboxMessage.status).one()
    assert status == "new"  # the code waits for the next round
