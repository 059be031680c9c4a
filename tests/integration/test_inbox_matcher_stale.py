"""Staleness with sources that stamp in whole seconds (issue 14: "The same write-off through a
clock"). A reply stamped at its initiation's second, cut to whole seconds (an e-mail Date header,
a gateway's export), is the reply to that initiation, not a stale one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from callerid.inbox import store
from callerid.inbox.filedrop import take_files
from callerid.inbox.matcher import STALE_TOLERANCE, match_new_messages
from callerid.inbox.models import InboundMessage, MessageSource
from callerid.ledger import open_ledger
from callerid.ledger.models import InboxMessage, InboxStatus
from tests.inbox_support import ACCOUNT, add_number, scope_for, session

E164 = "+14155550123"


def test_a_drop_file_reply_stamped_at_the_initiation_second_is_matched(
    db_url: str, tmp_path: Path
) -> None:
    ledger = open_ledger(db_url)
    try:
        initiated = datetime.now(UTC).replace(microsecond=654321)
        with session(ledger.engine) as s:
            add_number(s, E164, verification_uuid="uuid-now", initiated_at=initiated)
        drop = tmp_path / "drop"
        drop.mkdir()
        line = {
            "from": E164,
            "to": "+15005550100",
            "text": "Your verification code is 4821",
            "received_at": initiated.replace(microsecond=0).isoformat(),  # whole seconds
        }
        (drop / "gateway.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
        take_files(drop, scope_for(ledger.engine), ACCOUNT)
        with ledger.unit_of_work() as uow:
            codes = match_new_messages(uow, ACCOUNT, initiated + timedelta(seconds=2))
            uow.commit()
        assert [(c.e164, c.verification_uuid, c.code) for c in codes] == [
            (E164, "uuid-now", "4821")
        ]
    finally:
        ledger.close()


def reply(s: sa.orm.Session, external_id: str, text: str, at: datetime) -> int:
    message = InboundMessage(
        MessageSource.WEBHOOK, external_id, E164[1:], "15005550100", text, at, ACCOUNT
    )
    return store.insert_message(s, message)[0]


def test_stale_beyond_the_tolerance_or_with_an_earlier_verifications_code(db_url: str) -> None:
    ledger = open_ledger(db_url)
    try:
        initiated = datetime.now(UTC)
        with session(ledger.engine) as s:
            add_number(s, E164, verification_uuid="uuid-now", initiated_at=initiated)
            # the previous attempt's code, settled (stale) and still known to the inbox (a used
            # or refused code is forgotten at once: nothing to compare with then)
            old = reply(s, "old", "code 1111", initiated - timedelta(minutes=16))
            store.set_status(s, old, InboxStatus.STALE, matched_e164=E164, code="1111")
            reply(s, "too-old", "code 3333", initiated - STALE_TOLERANCE - timedelta(seconds=1))
            reply(s, "repeat", "code 1111", initiated - timedelta(seconds=1))
        with ledger.unit_of_work() as uow:
            assert match_new_messages(uow, ACCOUNT, initiated + timedelta(seconds=2)) == []
            uow.commit()
        with session(ledger.engine) as s:
            found = {
                m.external_id: (m.status, m.note)
                for m in s.execute(sa.select(InboxMessage)).scalars()
            }
        assert found["too-old"] == (
            InboxStatus.STALE.value,
            "received before the current initiation",
        )
        assert found["repeat"] == (
            InboxStatus.STALE.value,
            "carries the code of an earlier verification",
        )
        with session(ledger.engine) as s:
            reply(s, "fresh", "code 2222", initiated - timedelta(seconds=1))
        with ledger.unit_of_work() as uow:
            codes = match_new_messages(uow, ACCOUNT, initiated + timedelta(seconds=3))
        assert [c.code for c in codes] == ["2222"]
    finally:
        ledger.close()


def test_a_stale_code_is_retired_and_its_fingerprint_still_tells_a_repeat(db_url: str) -> None:
    """Review M2: a stale message is never decided again (only `new` ones are), so its code is
    dead: masked when it is settled, not when the number's window ends. The fingerprint it keeps
    is all the earlier-code rule needs to call a later copy of it stale."""
    ledger = open_ledger(db_url)
    try:
        initiated = datetime.now(UTC)
        with session(ledger.engine) as s:
            add_number(s, E164, verification_uuid="uuid-now", initiated_at=initiated)
            old = reply(s, "old", "Your code is 771234", initiated - timedelta(minutes=5))
        with ledger.unit_of_work() as uow:
            assert match_new_messages(uow, ACCOUNT, initiated + timedelta(seconds=2)) == []
            uow.commit()
        with session(ledger.engine) as s:
            settled = store.get_message(s, old)
            assert (settled.status, settled.note) == (
                InboxStatus.STALE.value,
                "received before the current initiation",
            )
            assert (settled.code, settled.text) == (
                store.fingerprint(E164, "771234"),
                "Your code is ****",
            )
            repeat = reply(s, "repeat", "Your code is 771234", initiated - timedelta(seconds=1))
        with ledger.unit_of_work() as uow:
            assert match_new_messages(uow, ACCOUNT, initiated + timedelta(seconds=3)) == []
            uow.commit()
        with session(ledger.engine) as s:
            again = store.get_message(s, repeat)
        assert (again.status, again.note, again.code, again.text) == (
            InboxStatus.STALE.value,
            "carries the code of an earlier verification",
            store.fingerprint(E164, "771234"),
            "Your code is ****",
        )
    finally:
        ledger.close()
