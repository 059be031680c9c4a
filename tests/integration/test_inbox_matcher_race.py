"""A code that lands while a matcher pass is reading (real SQLite and PostgreSQL, two sessions).

The sandbox answers an initiate at once; under load the OTP can reach the inbox between the
matcher's reads. It must wait for the next pass, never be written off as unmatched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from callerid.inbox import store
from callerid.inbox.matcher import match_new_messages
from callerid.inbox.models import InboundMessage, MessageSource
from callerid.ledger import open_ledger
from callerid.ledger.models import InboxStatus, Number, NumberStatus
from tests.inbox_support import ACCOUNT, add_number, all_messages, session

E164 = "+14155550123"


def _meanwhile(engine: sa.Engine, now: datetime) -> Callable[[], None]:
    """What another run and the phone network do while the pass reads: the number is sent its
    OTP (queued -> initiated) and the reply is stored."""

    def happen() -> None:
        with session(engine) as s:
            s.execute(
                sa.update(Number)
                .where(Number.e164 == E164)
                .values(
                    status=NumberStatus.INITIATED.value,
                    verification_uuid="uuid-late",
                    initiated_at=now,
                    expires_at=now + timedelta(minutes=15),
                )
            )
            store.insert_message(
                s,
                InboundMessage(
                    source=MessageSource.WEBHOOK,
                    external_id="late",
                    from_number=E164[1:],
                    to_number="15005550100",
                    text="Your verification code is 4821",
                    received_at=now + timedelta(seconds=1),
                    account=ACCOUNT,
                ),
            )

    return happen


def test_a_code_landing_between_the_matchers_reads_waits_for_the_next_pass(db_url: str) -> None:
    ledger = open_ledger(db_url)
    engine = sa.create_engine(db_url)
    now = datetime.now(UTC)
    with session(engine) as s:
        add_number(s, E164, status=NumberStatus.QUEUED, verification_uuid=None)
    happen = _meanwhile(engine, now)
    try:
        with ledger.unit_of_work() as uow:
            real = uow.numbers.live_verifications

            def live_then_concurrent_change(account: str, at: datetime) -> list[Number]:
                rows = real(account, at)  # the number is still queued here
                happen()  # ... and now it is initiated and its code is in the inbox
                return rows

            uow.numbers.live_verifications = live_then_concurrent_change  # type: ignore[method-assign]
            assert match_new_messages(uow, ACCOUNT, now) == []
            uow.commit()
        assert [m.status for m in all_messages(engine)] == [InboxStatus.NEW.value]
        with ledger.unit_of_work() as uow:  # the next pass finds it
            codes = match_new_messages(uow, ACCOUNT, now + timedelta(seconds=2))
            uow.commit()
        assert [(c.e164, c.verification_uuid, c.code) for c in codes] == [
            (E164, "uuid-late", "4821")
        ]
    finally:
        ledger.close()
        engine.dispose()
