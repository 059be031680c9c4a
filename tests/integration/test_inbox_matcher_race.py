"""Commits that land while a matcher pass is reading (real SQLite and PostgreSQL, two sessions).

The sandbox answers an initiate at once; under load the OTP can reach the inbox, and the number's
initiate can commit, between any two reads of a pass. The code must then wait for a later pass,
never be written off as unmatched (issue 14, "The matcher race").

The concurrent commit is interposed after the pass's k-th SELECT, whatever the pass reads. When
the pass holds SQLite's write lock (it does: its snapshot is BEGIN IMMEDIATE) the commit cannot
land inside it; it is then made just after the pass, which is where it would have landed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callerid.inbox import store
from callerid.inbox.matcher import match_new_messages
from callerid.inbox.models import InboundMessage, MatchedCode, MessageSource
from callerid.ledger import Ledger, open_ledger
from callerid.ledger.models import InboxMessage, InboxStatus, Number, NumberStatus
from tests.inbox_support import ACCOUNT, add_number, all_messages, session

E164 = "+14155550123"


def other_writer(db_url: str) -> sa.Engine:
    """Another process's connection: on SQLite it gives up at once instead of waiting for a
    lock (the pass holding it is on this very thread)."""
    if db_url.startswith("sqlite"):
        return sa.create_engine(db_url, connect_args={"timeout": 0})
    return sa.create_engine(db_url)


def initiate(engine: sa.Engine, at: datetime) -> None:
    """The number's initiate commits: initiating/queued -> initiated."""
    with session(engine) as s:
        s.execute(
            sa.update(Number)
            .where(Number.e164 == E164)
            .values(
                status=NumberStatus.INITIATED.value,
                verification_uuid="uuid-late",
                initiated_at=at,
                expires_at=at + timedelta(minutes=15),
            )
        )


def reply(engine: sa.Engine, at: datetime, external_id: str = "late") -> None:
    """The phone's reply is stored by the webhook receiver."""
    with session(engine) as s:
        store.insert_message(
            s,
            InboundMessage(
                source=MessageSource.WEBHOOK,
                external_id=external_id,
                from_number=E164[1:],
                to_number="15005550100",
                text="Your verification code is 4821",
                received_at=at,
                account=ACCOUNT,
            ),
        )


@contextmanager
def interposed(ledger: Ledger, after_select: int, happen: Callable[[], None]) -> Iterator[None]:
    """Run `happen` (another connection's commit) right after the pass's `after_select`-th SELECT;
    if the pass's lock keeps it out, or the pass reads less, right after the pass instead."""
    seen = 0
    deferred: list[Callable[[], None]] = [happen]

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal seen
        if not statement.lstrip().upper().startswith("SELECT"):
            return
        seen += 1
        if seen == after_select:
            try:
                happen()
            except sa.exc.OperationalError as exc:
                assert "locked" in str(exc)
            else:
                deferred.clear()

    sa.event.listen(ledger.engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        sa.event.remove(ledger.engine, "after_cursor_execute", after)
    for late in deferred:
        late()


def one_pass(ledger: Ledger, now: datetime) -> list[MatchedCode]:
    with ledger.unit_of_work() as uow:
        codes = match_new_messages(uow, ACCOUNT, now)
        uow.commit()
    return codes


def statuses(engine: sa.Engine) -> list[str]:
    return [m.status for m in all_messages(engine)]


@pytest.mark.parametrize("after_select", [1, 2, 3])
def test_an_initiate_committing_between_the_reads_never_writes_its_code_off(
    db_url: str, after_select: int
) -> None:
    """The issue's evidence: the reply is in the inbox while the number is `initiating`; its
    initiate commits (-> initiated) between the pass's reads."""
    ledger = open_ledger(db_url)
    writer = other_writer(db_url)
    now = datetime.now(UTC)
    with session(writer) as s:
        add_number(s, E164, status=NumberStatus.INITIATING, verification_uuid=None)
    reply(writer, now)
    try:
        with interposed(ledger, after_select, lambda: initiate(writer, now - timedelta(seconds=1))):
            first = one_pass(ledger, now)
        assert statuses(writer) == [InboxStatus.NEW.value]
        later = first or one_pass(ledger, now + timedelta(seconds=1))
        assert [(c.e164, c.verification_uuid, c.code) for c in later] == [
            (E164, "uuid-late", "4821")
        ]
    finally:
        ledger.close()
        writer.dispose()


@pytest.mark.parametrize("after_select", [1, 2, 3])
def test_a_code_landing_between_the_reads_waits_for_the_next_pass(
    db_url: str, after_select: int
) -> None:
    """The first race: the number was queued, then is sent its OTP and the reply is stored, all
    while the pass reads."""
    ledger = open_ledger(db_url)
    writer = other_writer(db_url)
    now = datetime.now(UTC)
    with session(writer) as s:
        add_number(s, E164, status=NumberStatus.QUEUED, verification_uuid=None)

    def happen() -> None:
        initiate(writer, now)
        reply(writer, now + timedelta(seconds=1))

    try:
        with interposed(ledger, after_select, happen):
            first = one_pass(ledger, now)
        assert statuses(writer) == [InboxStatus.NEW.value]
        later = first or one_pass(ledger, now + timedelta(seconds=2))
        assert [(c.e164, c.verification_uuid, c.code) for c in later] == [
            (E164, "uuid-late", "4821")
        ]
    finally:
        ledger.close()
        writer.dispose()


@pytest.mark.parametrize(
    "status", [NumberStatus.QUEUED, NumberStatus.INITIATING, NumberStatus.COMPLETING]
)
def test_a_message_naming_a_number_not_yet_live_is_kept_until_it_is(
    db_url: str, status: NumberStatus
) -> None:
    ledger = open_ledger(db_url)
    writer = other_writer(db_url)
    now = datetime.now(UTC)
    with session(writer) as s:
        add_number(s, E164, status=status, verification_uuid=None)
    reply(writer, now)
    try:
        for _ in range(3):
            assert one_pass(ledger, now) == []
            assert statuses(writer) == [InboxStatus.NEW.value]
        initiate(writer, now - timedelta(seconds=1))
        assert [c.code for c in one_pass(ledger, now)] == ["4821"]
    finally:
        ledger.close()
        writer.dispose()


@pytest.mark.parametrize("status", [NumberStatus.FAILED, NumberStatus.QUEUED])
def test_a_message_naming_a_number_whose_window_is_over_is_written_off(
    db_url: str, status: NumberStatus
) -> None:
    """Final, or back in the queue after its window ended (a late reply): nothing to complete."""
    ledger = open_ledger(db_url)
    writer = other_writer(db_url)
    now = datetime.now(UTC)
    with session(writer) as s:
        add_number(s, E164, status=status, initiated_at=now - timedelta(minutes=20))
    reply(writer, now)
    try:
        assert one_pass(ledger, now) == []
        with session(writer) as s:
            row = s.execute(sa.select(InboxMessage)).scalar_one()
            assert (row.status, row.note) == (
                InboxStatus.UNMATCHED.value,
                "no waiting number in From, To or text",
            )
    finally:
        ledger.close()
        writer.dispose()


# -- random interleavings ----------------------------------------------------------------------

NUMBERS = ("+14155550123", "+14155550124", "+14155550125")
STEPS = ("claim", "reply", "initiated")  # per number; the reply may also come before `initiated`


def _step(engine: sa.Engine, e164: str, step: str, now: datetime) -> None:
    with session(engine) as s:
        if step == "claim":
            s.execute(
                sa.update(Number)
                .where(Number.e164 == e164)
                .values(status=NumberStatus.INITIATING.value, initiated_at=now)
            )
        elif step == "initiated":
            s.execute(
                sa.update(Number)
                .where(Number.e164 == e164)
                .values(
                    status=NumberStatus.INITIATED.value,
                    verification_uuid=f"uuid-{e164[-1]}",
                    initiated_at=now,
                    expires_at=now + timedelta(minutes=15),
                )
            )
        else:
            store.insert_message(
                s,
                InboundMessage(
                    MessageSource.WEBHOOK,
                    f"reply-{e164}",
                    e164[1:],
                    "15005550100",
                    f"Your code is 40{e164[-2:]}",
                    now,
                    ACCOUNT,
                ),
            )


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, list[tuple[int | None, int]]]:
    """(how many numbers, ops): op (i, k) = the next step of number i, committed after the
    pass's k-th SELECT (k = 0: between passes); (None, k) = a pass with nothing interposed."""
    count = draw(st.integers(1, len(NUMBERS)))
    order = [i for i in range(count) for _ in STEPS]
    order = draw(st.permutations(order))
    ops: list[tuple[int | None, int]] = []
    for i in order:
        ops.extend(draw(st.lists(st.tuples(st.none(), st.just(0)), max_size=2)))
        ops.append((i, draw(st.integers(0, 3))))
    return count, ops


def test_random_interleavings_of_commits_and_messages_never_write_a_code_off(db_url: str) -> None:
    """Numbers go queued -> initiating -> initiated while their replies arrive (before or after
    the initiate's commit), each commit landing between passes or inside one, after any of its
    reads: no reply is ever settled as anything but a match, and every reply is matched in the
    end. A message for nobody is written off (the pass does write)."""
    ledger = open_ledger(db_url)
    writer = other_writer(db_url)
    try:
        check_interleavings(ledger, writer)
    finally:
        ledger.close()
        writer.dispose()


def check_interleavings(ledger: Ledger, writer: sa.Engine) -> None:
    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(case=interleavings(), reply_first=st.lists(st.booleans(), min_size=3, max_size=3))
    def check(case: tuple[int, list[tuple[int | None, int]]], reply_first: list[bool]) -> None:
        count, ops = case
        now = datetime.now(UTC)
        with session(writer) as s:
            s.execute(sa.delete(InboxMessage))
            s.execute(sa.delete(Number))  # events cascade
        with session(writer) as s:
            for e164 in NUMBERS[:count]:
                add_number(s, e164, status=NumberStatus.QUEUED, verification_uuid=None)
            store.insert_message(  # a message for nobody: it must be written off
                s, InboundMessage(MessageSource.WEBHOOK, "noise", "14155559999", None, "1234", now)
            )
        done = [0] * count
        matched: dict[str, str] = {}

        def steps_of(i: int) -> list[str]:
            # the claim comes first; the reply and the initiate's commit race each other
            return ["claim", "reply", "initiated"] if reply_first[i] else list(STEPS)

        for number, after_select in ops:
            happen: Callable[[], None] = lambda: None  # noqa: E731
            if number is not None:
                step = steps_of(number)[done[number]]
                done[number] += 1
                e164 = NUMBERS[number]
                happen = lambda e=e164, st_=step: _step(writer, e, st_, now)  # noqa: E731
                if after_select == 0:
                    happen()
                    continue
            with interposed(ledger, after_select, happen):
                codes = one_pass(ledger, now + timedelta(seconds=1))
            for code in codes:
                assert code.verification_uuid == f"uuid-{code.e164[-1]}"
                matched[code.e164] = code.code
            kept = {m.external_id: m.status for m in all_messages(writer)}
            assert kept.pop("noise", InboxStatus.UNMATCHED.value) in ("new", "unmatched")
            assert set(kept.values()) <= {InboxStatus.NEW.value}, kept
        matched.update({c.e164: c.code for c in one_pass(ledger, now + timedelta(seconds=2))})
        assert matched == {e164: f"40{e164[-2:]}" for e164 in NUMBERS[:count]}

    check()
