"""record_completions marks a batch's messages with one read of the inbox (issue 14: it read each
message, and flushed the rows changed so far, per code), and a second one for the copies of the
codes that verified (not one per code), and still marks each one right: used and retired (code
masked in the text, fingerprint kept), or refused with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from callerid.clock import OffsetClock
from callerid.inbox import store
from callerid.inbox.models import InboundMessage, MatchedCode, MessageSource
from callerid.ledger import NumberStatus, open_ledger
from callerid.ledger.models import InboxMessage
from callerid.pipeline import ledger_ops
from callerid.pipeline.outcome import Outcome
from tests.e2e.helpers import valid_numbers
from tests.ledger_support import offline_pipeline

ACCOUNT = "MAQUERYCOUNT00000001"


def test_a_batch_reads_its_messages_once_and_marks_each(db_url: str, tmp_path: Path) -> None:
    numbers = valid_numbers(6, prefix="+1312555")
    clock = OffsetClock()
    now = clock.now()
    with open_ledger(db_url) as ledger:
        with ledger.unit_of_work() as uow:
            uow.numbers.upsert_many(ACCOUNT, [{"e164": n} for n in numbers], "run", now)
            rows = uow.numbers.claim(
                ACCOUNT, [NumberStatus.QUEUED], NumberStatus.INITIATING, 10, now, "run", "t"
            )
            for row in rows:
                uow.numbers.transition(
                    row,
                    NumberStatus.INITIATED,
                    reason="t",
                    run_id="run",
                    now=now,
                    verification_uuid=f"uuid-{row.id}",
                    expires_at=now + timedelta(minutes=15),
                )
                uow.numbers.transition(
                    row, NumberStatus.COMPLETING, reason="t", run_id="run", now=now
                )
            ids = []
            for i, e164 in enumerate(numbers):
                message = InboundMessage(
                    MessageSource.WEBHOOK,
                    f"m-{i}",
                    e164,
                    None,
                    f"Your code is 4{i}1234",
                    datetime.now(UTC),
                    ACCOUNT,
                )
                ids.append(store.insert_message(uow.session, message)[0])
            uow.commit()
        codes = [
            MatchedCode(e164, f"uuid-{i}", f"4{i}1234", message_id)
            for i, (e164, message_id) in enumerate(zip(numbers, ids, strict=True))
        ]
        results = [
            Outcome(e164, NumberStatus.VERIFIED, "verified")
            if i % 2 == 0
            else Outcome(e164, NumberStatus.INITIATED, "wrong code", wrong_otp=True)
            for i, e164 in enumerate(numbers)
        ]
        pipeline = offline_pipeline(ledger, tmp_path, account=ACCOUNT, clock=clock)
        inbox_reads: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "inbox_messages" in statement:
                inbox_reads.append(statement)

        sa.event.listen(ledger.engine, "before_cursor_execute", note)
        try:
            ledger_ops.record_completions(pipeline, codes, results)
        finally:
            sa.event.remove(ledger.engine, "before_cursor_execute", note)
        with ledger.unit_of_work() as uow:
            stored = {
                m.from_number: m
                for m in uow.session.execute(sa.select(InboxMessage)).scalars().all()
            }
            statuses = ledger_ops.statuses(pipeline, numbers)
    assert len(inbox_reads) == 2  # the batch's messages; the new ones, for copies of used codes
    for i, e164 in enumerate(numbers):
        message = stored[e164]
        assert f"4{i}1234" not in (message.text or "")  # masked either way
        assert message.code == store.fingerprint(e164, f"4{i}1234")  # what the store promises
        if i % 2 == 0:
            assert (message.status, message.note) == ("used", "code accepted")
            assert statuses[e164] == NumberStatus.VERIFIED.value
        else:
            assert message.status == "unmatched"
            assert message.note == "code refused: wrong code"
            assert statuses[e164] == NumberStatus.INITIATED.value
