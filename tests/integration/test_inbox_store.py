"""The inbox table on file SQLite and PostgreSQL: stored once, listed, settled, assigned."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from callerid.inbox import store
from callerid.inbox.manual import submit_code
from callerid.inbox.matcher import match_rows
from callerid.inbox.models import (
    AssignmentError,
    InboundMessage,
    InvalidCodeError,
    InvalidNumberError,
    MessageNotFoundError,
    MessageSource,
)
from callerid.ledger.models import InboxMessage, InboxStatus, NumberStatus
from tests.inbox_support import ACCOUNT, add_number, all_messages, make_engine, session

NOW = datetime.now(UTC)
A, B = "+14155550123", "+14155550124"


def msg(
    external_id: str, text: str = "Your code is 4821", sender: str = "14155550123"
) -> InboundMessage:
    return InboundMessage(
        source=MessageSource.WEBHOOK,
        external_id=external_id,
        from_number=sender,
        to_number="15005550100",
        text=text,
        received_at=NOW,
        account=ACCOUNT,
    )


def test_insert_once_per_source_and_external_id(db_url: str) -> None:
    engine = make_engine(db_url)
    with session(engine) as s:
        first = store.insert_message(s, msg("m-1"))
        again = store.insert_message(s, msg("m-1", text="something else"))
        other_source = store.insert_message(
            s, InboundMessage(MessageSource.FILE, "m-1", "1", None, "x", NOW)
        )
    assert first[1] is True and again == (first[0], False)
    assert other_source[1] is True
    rows = all_messages(engine)
    assert [r.text for r in rows] == ["Your code is 4821", "x"]  # the replay changed nothing


def test_concurrent_inserts_leave_one_row(db_url: str) -> None:
    engine = make_engine(db_url)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def insert() -> None:
        barrier.wait()
        with session(engine) as s:
            results.append(store.insert_message(s, msg("same-uuid"))[1])

    threads = [threading.Thread(target=insert) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(all_messages(engine)) == 1


def test_match_settle_and_list(db_url: str) -> None:
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, A, verification_uuid="uuid-a", initiated_at=NOW - timedelta(minutes=1))
        good = store.insert_message(s, msg("good"))[0]
        store.insert_message(s, msg("nobody", sender="14155559999"))
        store.insert_message(s, msg("two", text="1111 or 2222"))
        matches = match_rows(s, ACCOUNT, NOW)
    assert [(m.e164, m.verification_uuid, m.code, m.message_id) for m in matches] == [
        (A, "uuid-a", "4821", good)
    ]
    with session(engine) as s:
        statuses = {m.external_id: m.status for m in store.list_messages(s)}
        assert statuses == {"good": "new", "nobody": "unmatched", "two": "ambiguous"}
        store.mark_used(s, good, A, "4821")
    with session(engine) as s:
        used = store.list_messages(s, status=InboxStatus.USED)
        # A used code is forgotten: masked in the text, kept only as a fingerprint (issue 13).
        assert [(m.id, m.matched_e164, m.code) for m in used] == [
            (good, A, store.fingerprint(A, "4821"))
        ]
        assert "4821" not in used[0].text and "****" in used[0].text
        assert "4821" not in repr(used[0])  # codes stay out of reprs
        assert match_rows(s, ACCOUNT, NOW) == []


def test_newest_message_wins_and_refused_code_falls_back(db_url: str) -> None:
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, A, verification_uuid="uuid-a", initiated_at=NOW - timedelta(minutes=1))
        older = store.insert_message(s, msg("older", text="code 1111"))[0]
        row = store.get_row(s, older)
        row.received_at = NOW - timedelta(seconds=20)
        newer = store.insert_message(s, msg("newer", text="code 2222"))[0]
        assert [m.message_id for m in match_rows(s, ACCOUNT, NOW)] == [newer]
        store.mark_rejected(s, newer, "invalid otp")
        assert [(m.message_id, m.code) for m in match_rows(s, ACCOUNT, NOW)] == [(older, "1111")]
        assert store.get_message(s, newer).note == "code refused: invalid otp"


def test_assign_settles_a_message_for_a_person(db_url: str) -> None:
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, B, verification_uuid="uuid-b", initiated_at=NOW - timedelta(minutes=1))
        mid = store.insert_message(s, msg("x", text="1111 or 2222", sender="14155559999"))[0]
        assert match_rows(s, ACCOUNT, NOW) == []
        assert store.get_message(s, mid).status == "unmatched"  # From is nobody waiting
        with pytest.raises(AssignmentError, match="2 candidate codes"):
            store.assign(s, mid, B)
        with pytest.raises(InvalidCodeError):
            store.assign(s, mid, B, code="12ab")
        with pytest.raises(InvalidNumberError):
            store.assign(s, mid, "not a number", code="2222")
        with pytest.raises(MessageNotFoundError):
            store.assign(s, 999_999, B, code="2222")
        assigned = store.assign(s, mid, "(415) 555-0124", code="2222")
        assert (assigned.status, assigned.matched_e164) == ("new", B)
        matches = match_rows(s, ACCOUNT, NOW)
        assert [(m.e164, m.code, m.message_id) for m in matches] == [(B, "2222", mid)]
        store.mark_used(s, mid)
        with pytest.raises(AssignmentError, match="already used"):
            store.assign(s, mid, B, code="2222")


def test_typed_codes_match_like_messages(db_url: str) -> None:
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, A, verification_uuid="uuid-a", initiated_at=NOW - timedelta(minutes=1))
        add_number(s, B, status=NumberStatus.INITIATING, verification_uuid=None)
        mid, created = submit_code(
            s, ACCOUNT, "+1 415 555 0123", " 4821 ", MessageSource.UI, "run:1"
        )
        assert created and submit_code(s, ACCOUNT, A, "4821", MessageSource.UI, "run:1")[1] is False
        waiting = submit_code(s, ACCOUNT, B, "5555")[0]  # B is still being initiated: it waits
        with pytest.raises(InvalidCodeError):
            submit_code(s, ACCOUNT, A, "12")
        matches = match_rows(s, ACCOUNT, NOW)
        assert [(m.e164, m.code, m.message_id) for m in matches] == [(A, "4821", mid)]
        assert store.get_message(s, waiting).status == "new"
        assert store.get_message(s, mid).source == "ui"


def test_refused_and_ended_codes_are_forgotten(db_url: str) -> None:
    """Codes do not outlive their use: a refused code at once; a code whose number's window has
    ended, or that is older than any window, at the sweep."""
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, A, verification_uuid="uuid-a", initiated_at=NOW)
        refused = store.insert_message(s, msg("refused", text="Your code is 5150"))[0]
        fresh = store.insert_message(s, msg("fresh", text="Your code is 6161"))[0]
        store.mark_rejected(s, refused, "invalid otp", A, "5150")
        row = store.get_row(s, fresh)
        row.status, row.matched_e164 = InboxStatus.UNMATCHED.value, A
    with session(engine) as s:
        assert store.get_message(s, refused).code == store.fingerprint(A, "5150")
        assert "5150" not in store.get_message(s, refused).text
        assert store.retire_ended(s, NOW + timedelta(minutes=1), ACCOUNT) == 0  # still live
        assert "6161" in store.get_message(s, fresh).text
        assert store.retire_ended(s, NOW + timedelta(minutes=30), ACCOUNT) == 1
        assert "6161" not in store.get_message(s, fresh).text
        assert store.retire_ended(s, NOW + timedelta(minutes=40), ACCOUNT) == 0  # once is enough
    with session(engine) as s:  # an assigned message left `new` past any window: no code left
        late = store.insert_message(s, msg("late", text="Your code is 7272"))[0]
        store.assign(s, late, A)
    with session(engine) as s:
        assert store.retire_ended(s, NOW + timedelta(minutes=40), ACCOUNT) == 1
        assert store.get_message(s, late).code is None
        assert "7272" not in store.get_message(s, late).text


def test_a_code_assigned_to_a_number_not_waiting_is_retired(db_url: str) -> None:
    """Review M3: settled unmatched, the assigned code no longer readable (fingerprint kept)."""
    engine = make_engine(db_url)
    nobody = "+14155550199"
    with session(engine) as s:
        mid = store.insert_message(s, msg("x", text="code 5555 or 6666", sender="14155559999"))[0]
        assert match_rows(s, ACCOUNT, NOW) == []
        store.assign(s, mid, nobody, code="5555")
        assert match_rows(s, ACCOUNT, NOW) == []
    with session(engine) as s:
        settled = store.get_message(s, mid)
        assert (settled.status, settled.matched_e164) == ("unmatched", nobody)
        assert settled.note == f"{nobody} is not waiting for a code"
        assert settled.code == store.fingerprint(nobody, "5555")
        assert settled.text == "code **** or ****"


def test_a_used_code_written_with_separators_is_masked(db_url: str) -> None:
    """Review M4: "482 193" is no code to the matcher; assigned with --code 482193 and used, it
    is masked in the text like any used code."""
    engine = make_engine(db_url)
    with session(engine) as s:
        add_number(s, A, verification_uuid="uuid-a", initiated_at=NOW - timedelta(minutes=1))
        mid = store.insert_message(s, msg("spaced", text="Your code: 482 193"))[0]
        assert match_rows(s, ACCOUNT, NOW) == []
        assert store.get_message(s, mid).note == "no 4-8 digit code in the text"
        store.assign(s, mid, A, code="482193")
        assert [(m.code, m.message_id) for m in match_rows(s, ACCOUNT, NOW)] == [("482193", mid)]
        store.mark_used(s, mid, A, "482193")
    with session(engine) as s:
        used = store.get_message(s, mid)
        assert (used.status, used.code, used.text) == (
            "used",
            store.fingerprint(A, "482193"),
            "Your code: ****",
        )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Your code: 482 193", "Your code: ****"),
        ("code 482-193, or 482.193", "code ****, or ****"),
        ("4 8 2 1 9 3 is it", "**** is it"),
        ("482 - 193", "****"),
        # longer digit runs are not the code (only the 4-8 digit groups are masked, as ever)
        ("call 4821930 or 1482 193", "call **** or **** 193"),
    ],
)
def test_retire_masks_the_known_code_with_separators(text: str, masked: str) -> None:
    row = InboxMessage(text=text, code="482193", matched_e164=A, status="used")
    store.retire(row)
    assert (row.text, row.code) == (masked, store.fingerprint(A, "482193"))
