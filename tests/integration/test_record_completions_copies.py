"""A code that verified its number is dead in every copy (review M1, L4): the same SMS by webhook
and by IMAP, the code typed on the page and the SMS, a copy a person assigned. A pass hands one
message per number, and the run ends when nothing is pending, so record_completions settles the
other copies (used, code masked, fingerprint kept) in its own transaction; a message with another
code, or that also names a number still waiting, is left to the matcher."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm

from callerid.clock import OffsetClock
from callerid.inbox import store
from callerid.inbox.manual import submit_code
from callerid.inbox.matcher import ASSIGNED_NOTE, COPY_NOTE
from callerid.inbox.models import InboundMessage, MatchedCode, MessageSource
from callerid.ledger import Ledger, NumberStatus, open_ledger
from callerid.ledger.models import InboxMessage
from callerid.ledger.snapshot import begin_snapshot
from callerid.pipeline import ledger_ops
from callerid.pipeline.outcome import Outcome
from callerid.pipeline.session import Pipeline
from tests.e2e.helpers import valid_numbers
from tests.ledger_support import offline_pipeline

ACCOUNT = "MACOPIESOFCODES00001"
CODE = "482193"


def _pipeline(ledger: Ledger, clock: OffsetClock, tmp_path: Path) -> Pipeline:
    return offline_pipeline(ledger, tmp_path, account=ACCOUNT, clock=clock)


def _numbers(ledger: Ledger, now: datetime, numbers: list[str]) -> None:
    """All `initiated` (window open); the first `completing`, the last `verified`."""
    with ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(ACCOUNT, [{"e164": n} for n in numbers], "run", now)
        rows = uow.numbers.claim(
            ACCOUNT, [NumberStatus.QUEUED], NumberStatus.INITIATING, 10, now, "run", "t"
        )
        by_e164 = {r.e164: r for r in rows}
        for row in rows:
            uow.numbers.transition(
                row,
                NumberStatus.INITIATED,
                reason="t",
                run_id="run",
                now=now,
                verification_uuid=f"uuid-{row.e164}",
                initiated_at=now - timedelta(minutes=1),
                expires_at=now + timedelta(minutes=14),
            )
        for e164 in (numbers[0], numbers[-1]):
            uow.numbers.transition(
                by_e164[e164], NumberStatus.COMPLETING, reason="t", run_id="run", now=now
            )
        uow.numbers.transition(
            by_e164[numbers[-1]], NumberStatus.VERIFIED, reason="t", run_id="run", now=now
        )
        uow.commit()


def _message(external_id: str, sender: str, to: str | None, text: str) -> InboundMessage:
    source = MessageSource.IMAP if external_id.startswith("imap") else MessageSource.WEBHOOK
    return InboundMessage(source, external_id, sender, to, text, datetime.now(UTC), ACCOUNT)


def test_copies_of_a_used_code_are_settled_with_it(db_url: str, tmp_path: Path) -> None:
    a, b, done = valid_numbers(3, prefix="+1312555")
    clock = OffsetClock()
    now = clock.now()
    with open_ledger(db_url) as ledger:
        _numbers(ledger, now, [a, b, done])
        texts = {
            "webhook": (a, "15005550100", f"Your code is {CODE}"),  # the one the pass handed
            "imap": (a, "15005550100", f"Your code is {CODE}"),  # the same SMS by IMAP
            "to-done": (a, done, f"Your code is {CODE}"),  # also names a verified number
            "other-code": (a, None, "Your code is 555666"),  # not this code: left
            "two-codes": (a, None, f"Your code is {CODE} or 777888"),  # which one? left
            "names-b": (a, b, f"Your code is {CODE}"),  # B is still waiting: left
            "from-b": (b, None, f"Your code is {CODE}"),  # B's own message: left
            "assigned": (b, None, "Your code: 482 193"),  # a person said: A's, this code
        }
        with ledger.unit_of_work() as uow:
            ids = {
                key: store.insert_message(uow.session, _message(key, *parts))[0]
                for key, parts in texts.items()
            }
            ids["page"] = submit_code(uow.session, ACCOUNT, a, CODE, MessageSource.UI)[0]
            store.assign(uow.session, ids["assigned"], a, code=CODE)
            uow.commit()
        codes = [MatchedCode(a, f"uuid-{a}", CODE, ids["webhook"])]
        ledger_ops.record_completions(
            _pipeline(ledger, clock, tmp_path), codes, [Outcome(a, NumberStatus.VERIFIED, "ok")]
        )
        with ledger.unit_of_work() as uow:
            rows = uow.session.execute(sa.select(InboxMessage)).scalars().all()
            found = {r.id: (r.status, r.matched_e164, r.code, r.note, r.text) for r in rows}
            statuses = ledger_ops.statuses(_pipeline(ledger, clock, tmp_path), [a, b])
    by_key = {key: found[i] for key, i in ids.items()}
    assert statuses == {a: "verified", b: "initiated"}
    fp = store.fingerprint(a, CODE)
    assert by_key["webhook"][:4] == ("used", a, fp, "code accepted")
    for key in ("imap", "page", "to-done", "assigned"):
        assert by_key[key][:4] == ("used", a, fp, COPY_NOTE), key
        assert CODE not in by_key[key][4] and "482 193" not in by_key[key][4], key
    assert by_key["assigned"][4] == "Your code: ****"
    for key in ("other-code", "two-codes", "names-b", "from-b"):
        status, matched, code, note, text = by_key[key]
        assert (status, matched, code, note) == ("new", None, None, None), key
        assert text == texts[key][2], key


def test_a_copy_a_person_assigned_elsewhere_is_left_alone(db_url: str, tmp_path: Path) -> None:
    """Assigned to another number, or with another code, a message is not a copy."""
    a, b, done = valid_numbers(3, prefix="+1312556")
    clock = OffsetClock()
    now = clock.now()
    with open_ledger(db_url) as ledger:
        _numbers(ledger, now, [a, b, done])
        with ledger.unit_of_work() as uow:
            used = store.insert_message(uow.session, _message("w", a, None, f"code {CODE}"))[0]
            to_b = store.insert_message(uow.session, _message("x", a, None, f"code {CODE}"))[0]
            other = store.insert_message(uow.session, _message("y", a, None, "code 1234 5678"))[0]
            store.assign(uow.session, to_b, b, code=CODE)
            store.assign(uow.session, other, a, code="5678")
            uow.commit()
        ledger_ops.record_completions(
            _pipeline(ledger, clock, tmp_path),
            [MatchedCode(a, f"uuid-{a}", CODE, used)],
            [Outcome(a, NumberStatus.VERIFIED, "ok")],
        )
        with ledger.unit_of_work() as uow:
            left = {
                r.id: (r.status, r.matched_e164, r.code, r.note)
                for r in uow.session.execute(sa.select(InboxMessage)).scalars()
            }
    assert left[to_b] == ("new", b, CODE, ASSIGNED_NOTE)
    assert left[other] == ("new", a, "5678", ASSIGNED_NOTE)
    assert left[used][0] == "used"


def test_a_message_a_person_assigns_meanwhile_is_not_overwritten(
    db_url: str, tmp_path: Path
) -> None:
    """The copies are decided and written in one snapshot: a person who assigns a copy to
    another number with another code between that read and the write keeps the assignment
    (PostgreSQL: our write meets a serialization failure and record_completions runs again, and
    then leaves the message alone; SQLite: the person waits for our lock, then finds the message
    used and is told so)."""
    a, b, done = valid_numbers(3, prefix="+1312557")
    clock = OffsetClock()
    now = clock.now()
    with open_ledger(db_url) as ledger:
        _numbers(ledger, now, [a, b, done])
        with ledger.unit_of_work() as uow:
            used = store.insert_message(uow.session, _message("w", a, None, f"code {CODE}"))[0]
            copy = store.insert_message(uow.session, _message("imap-1", a, None, f"code {CODE}"))[0]
            uow.commit()
        sqlite = db_url.startswith("sqlite")
        # SQLite: the person waits for our lock (as long as it takes); PostgreSQL: nothing of
        # ours blocks the person, who is done before we write.
        person = sa.create_engine(db_url, connect_args={"timeout": 60} if sqlite else {})
        errors: list[Exception] = []

        def assign_to_b() -> None:
            try:
                with sa.orm.Session(person) as s:
                    begin_snapshot(s, write=True)  # reads and writes one state, as we do
                    store.assign(s, copy, b, code="999111")
                    s.commit()
            except Exception as exc:  # SQLite: refused once our lock is gone (it was used)
                errors.append(exc)

        person_thread = threading.Thread(target=assign_to_b)

        def meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if (
                not person_thread.is_alive()
                and person_thread.ident is None
                and statement.lstrip().startswith("SELECT")
                and "ORDER BY inbox_messages.received_at" in statement
            ):
                person_thread.start()
                person_thread.join(timeout=1 if sqlite else 60)

        sa.event.listen(ledger.engine, "after_cursor_execute", meanwhile)
        try:
            ledger_ops.record_completions(
                _pipeline(ledger, clock, tmp_path),
                [MatchedCode(a, f"uuid-{a}", CODE, used)],
                [Outcome(a, NumberStatus.VERIFIED, "ok")],
            )
        finally:
            sa.event.remove(ledger.engine, "after_cursor_execute", meanwhile)
            person_thread.join(timeout=60)
            person.dispose()
        with ledger.unit_of_work() as uow:
            left = {
                r.id: (r.status, r.matched_e164, r.code, r.note)
                for r in uow.session.execute(sa.select(InboxMessage)).scalars()
            }
            statuses = ledger_ops.statuses(_pipeline(ledger, clock, tmp_path), [a])
    assert person_thread.ident is not None  # the person did act in between
    assert statuses == {a: "verified"}
    assert left[used][:3] == ("used", a, store.fingerprint(a, CODE))
    if errors:  # told, not overwritten
        assert "already used" in str(errors[0])
        assert left[copy] == ("used", a, store.fingerprint(a, CODE), COPY_NOTE)
    else:
        assert left[copy] == ("new", b, "999111", ASSIGNED_NOTE)
