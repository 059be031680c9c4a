"""The number repository on file SQLite and PostgreSQL: registration, reads, claims, transitions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from callerid.ledger import (
    OTP_WINDOW,
    ConcurrentUpdateError,
    Event,
    IllegalTransitionError,
    InvalidRecordError,
    Ledger,
    NumberRecord,
    NumberStatus,
    open_ledger,
)
from callerid.ledger.upsert import CHUNK
from tests.ledger_support import (
    ACCOUNT,
    OTHER,
    RUN,
    T0,
    drive,
    e164s,
    number,
    records,
    register,
    statuses,
)

S = NumberStatus


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def _events(ledger: Ledger) -> int:
    with ledger.unit_of_work() as uow:
        return uow.events.count()


# -- registration -----------------------------------------------------------------------------


def test_upsert_inserts_queued_numbers_with_a_registered_event(ledger: Ledger) -> None:
    with ledger.unit_of_work() as uow:
        result = uow.numbers.upsert_many(
            ACCOUNT, records(3, alias="desk", channel="call", country="US"), RUN, T0
        )
        uow.commit()
    assert (result.inserted, result.updated, result.unchanged) == (3, 0, 0)
    row = number(ledger, e164s(1)[0])
    assert (row.status, row.alias, row.channel, row.country) == ("queued", "desk", "call", "US")
    assert (row.attempts, row.wrong_otps, row.last_run_id, row.created_at) == (0, 0, RUN, T0)
    with ledger.unit_of_work() as uow:
        (event,) = uow.events.history(ACCOUNT, row.e164)
        assert (event.from_status, event.to_status, event.reason, event.at) == (
            None,
            "queued",
            "registered",
            T0,
        )


def test_a_known_number_keeps_its_status_and_waiting_ones_take_new_details(ledger: Ledger) -> None:
    register(ledger, 4)
    one, two, three, four = e164s(4)
    drive(ledger, one, S.INITIATING, S.INITIATED, S.COMPLETING, S.VERIFIED)
    drive(ledger, two, S.INITIATING, S.INITIATED)
    later = T0 + timedelta(hours=1)
    with ledger.unit_of_work() as uow:
        result = uow.numbers.upsert_many(
            ACCOUNT,
            [
                NumberRecord(one, alias="new"),  # final: keeps what was verified
                NumberRecord(two, alias="new", subaccount="SA1"),  # live: takes the new details
                NumberRecord(three, alias="new", channel="call"),  # queued: takes them
                NumberRecord(four),  # the same as before
            ],
            "run-2",
            later,
        )
        uow.commit()
    assert (result.inserted, result.updated, result.unchanged, result.kept_final) == (0, 2, 1, 1)
    assert statuses(ledger) == {one: "verified", two: "initiated", three: "queued", four: "queued"}
    assert number(ledger, one).alias is None
    assert (number(ledger, two).alias, number(ledger, two).subaccount) == ("new", "SA1")
    assert (number(ledger, three).channel, number(ledger, three).updated_at) == ("call", later)
    assert number(ledger, two).attempts == 1  # the running verification is untouched


def test_upsert_in_several_chunks_dedupes_and_keeps_accounts_apart(ledger: Ledger) -> None:
    many = records(CHUNK * 2 + 345)
    with ledger.unit_of_work() as uow:
        first = uow.numbers.upsert_many(ACCOUNT, [*many, many[0], many[-1]], RUN, T0)
        other = uow.numbers.upsert_many(OTHER, many[:10], RUN, T0)
        uow.commit()
    assert first.inserted == len(many) and other.inserted == 10
    with ledger.unit_of_work() as uow:
        assert uow.numbers.counts_by_status(ACCOUNT)[S.QUEUED] == len(many)
        assert uow.numbers.counts_by_status(None)[S.QUEUED] == len(many) + 10
        assert uow.numbers.accounts() == [ACCOUNT, OTHER]
        again = uow.numbers.upsert_many(ACCOUNT, many, RUN, T0)
    assert (again.inserted, again.unchanged) == (0, len(many))
    assert _events(ledger) == len(many) + 10


def test_a_bad_record_is_refused_before_anything_is_written(ledger: Ledger) -> None:
    with ledger.unit_of_work() as uow, pytest.raises(InvalidRecordError, match="record 2"):
        uow.numbers.upsert_many(ACCOUNT, [*records(2), {"e164": "4155550000"}], RUN, T0)
    assert statuses(ledger) == {}


# -- reads ------------------------------------------------------------------------------------


def test_reads_by_status_counts_and_live_verifications(ledger: Ledger) -> None:
    register(ledger, 5)
    a, b, c, _, _ = e164s(5)
    drive(ledger, a, S.INITIATING, S.INITIATED, now=T0)
    drive(ledger, b, S.INITIATING, S.INITIATED, now=T0 + timedelta(minutes=10))
    drive(ledger, c, S.INITIATING)
    with ledger.unit_of_work() as uow:
        assert [n.e164 for n in uow.numbers.by_status(ACCOUNT, S.INITIATED, "initiating")] == [
            a,
            b,
            c,
        ]
        counts = uow.numbers.counts_by_status(ACCOUNT)
        assert counts == {**dict.fromkeys(S, 0), S.QUEUED: 2, S.INITIATED: 2, S.INITIATING: 1}
        assert counts["queued"] == 2  # StrEnum keys answer to their values
        live = uow.numbers.live_verifications(ACCOUNT, T0 + timedelta(minutes=14))
        assert [n.e164 for n in live] == [a, b]
        live = uow.numbers.live_verifications(ACCOUNT, T0 + OTP_WINDOW)  # a's window just closed
        assert [n.e164 for n in live] == [b]
        assert uow.numbers.get(ACCOUNT, "+19999999999") is None
        assert uow.numbers.get(OTHER, a) is None


def test_timestamps_come_back_as_utc_whatever_zone_went_in(ledger: Ledger) -> None:
    from zoneinfo import ZoneInfo

    register(ledger, 1, now=T0.astimezone(ZoneInfo("America/New_York")))
    row = number(ledger, e164s(1)[0])
    assert row.created_at == T0 and row.created_at.utcoffset() == timedelta(0)


# -- claims -----------------------------------------------------------------------------------


def test_claim_moves_the_oldest_stamps_the_intent_and_writes_events(ledger: Ledger) -> None:
    register(ledger, 10)
    now = T0 + timedelta(minutes=1)
    with ledger.unit_of_work() as uow:
        claimed = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 4, now, "run-2", "initiate")
        uow.commit()
    assert [n.e164 for n in claimed] == e164s(4)
    first = claimed[0]  # still readable after the commit
    assert (first.status, first.initiated_at, first.expires_at) == (
        "initiating",
        now,
        now + OTP_WINDOW,
    )
    assert first.last_run_id == "run-2" and first.attempts == 0
    with ledger.unit_of_work() as uow:
        history = uow.events.history(ACCOUNT, first.e164)
        assert [(e.from_status, e.to_status, e.reason, e.run_id) for e in history][-1] == (
            "queued",
            "initiating",
            "initiate",
            "run-2",
        )
        more = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 100, now, RUN, "initiate")
        assert [n.e164 for n in more] == e164s(6, 4)
        assert uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 100, now, RUN, "x") == []
        assert uow.numbers.claim(ACCOUNT, [S.INITIATED], S.COMPLETING, 0, now, RUN, "x") == []
    # Not committed: the second claim rolled back with its unit of work.
    assert list(statuses(ledger).values()).count("queued") == 6


def test_claim_from_several_states_records_each_ones_origin(ledger: Ledger) -> None:
    register(ledger, 3)
    a, b, _ = e164s(3)
    drive(ledger, a, S.INITIATING, S.INITIATED)
    drive(ledger, b, S.INITIATING, S.INITIATED)
    with ledger.unit_of_work() as uow:
        claimed = uow.numbers.claim(
            ACCOUNT, [S.INITIATED], S.COMPLETING, 10, T0, RUN, "code received"
        )
        uow.commit()
    assert [n.e164 for n in claimed] == [a, b]
    assert statuses(ledger)[a] == "completing"


def test_an_illegal_claim_raises_before_touching_anything(ledger: Ledger) -> None:
    register(ledger, 2)
    with ledger.unit_of_work() as uow:
        with pytest.raises(IllegalTransitionError, match="queued -> initiated"):
            uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATED, 5, T0, RUN, "x")
        # A move with side effects (attempt counting) must go through transition().
        with pytest.raises(IllegalTransitionError):
            uow.numbers.claim(ACCOUNT, [S.INITIATING], S.EXPIRED, 5, T0, RUN, "x")
    assert set(statuses(ledger).values()) == {"queued"}


# -- transitions ------------------------------------------------------------------------------


def test_transition_sets_fields_counts_the_attempt_and_records_the_event(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    with ledger.unit_of_work() as uow:
        (row,) = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 1, T0, RUN, "initiate")
        uow.commit()
        event = uow.numbers.transition(
            row, S.INITIATED, reason="initiated", run_id=RUN, now=T0, verification_uuid="v-1"
        )
        uow.commit()
    assert (event.from_status, event.to_status) == ("initiating", "initiated")
    row = number(ledger, e164)
    assert (row.status, row.verification_uuid, row.attempts) == ("initiated", "v-1", 1)


def test_an_illegal_transition_raises_and_writes_nothing(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    before = _events(ledger)
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, e164)
        assert row is not None
        with pytest.raises(IllegalTransitionError, match=r"\+14155550000: queued -> verified|"):
            uow.numbers.transition(row, S.INITIATED, reason="skip", run_id=RUN, now=T0)
        with pytest.raises(TypeError, match="status"):
            uow.numbers.transition(row, S.INITIATING, reason="x", run_id=RUN, now=T0, status="x")
        uow.commit()
    assert statuses(ledger) == {e164: "queued"} and _events(ledger) == before


def test_event_and_status_change_share_the_transaction(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    before = _events(ledger)
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, e164)
        assert row is not None
        uow.numbers.transition(row, S.INITIATING, reason="x", run_id=RUN, now=T0)
        # no commit: leaving the block rolls back both
    assert statuses(ledger) == {e164: "queued"} and _events(ledger) == before


def test_transition_many_is_all_or_nothing(ledger: Ledger) -> None:
    register(ledger, 3)
    a, b, c = e164s(3)
    drive(ledger, c, S.INITIATING)
    with ledger.unit_of_work() as uow:
        rows = uow.numbers.by_status(ACCOUNT)
        with pytest.raises(IllegalTransitionError, match=re.escape(c)):
            uow.numbers.transition_many(rows, S.INITIATING, reason="x", run_id=RUN, now=T0)
        moved = uow.numbers.transition_many(
            rows[:2], S.ALREADY_VERIFIED, reason="listed", run_id=RUN, now=T0
        )
        uow.commit()
    assert moved == 2
    assert statuses(ledger) == {a: "already_verified", b: "already_verified", c: "initiating"}


def test_requeueing_a_verified_number_starts_it_afresh(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    drive(ledger, e164, S.INITIATING, S.INITIATED, S.COMPLETING, S.VERIFIED, S.QUEUED)
    row = number(ledger, e164)
    assert (row.status, row.attempts, row.verification_uuid, row.initiated_at) == (
        "queued",
        0,
        None,
        None,
    )


def test_a_row_from_another_unit_of_work_is_refused(ledger: Ledger) -> None:
    register(ledger, 1)
    row = number(ledger, e164s(1)[0])
    with ledger.unit_of_work() as uow, pytest.raises(ValueError, match="another unit of work"):
        uow.numbers.transition(row, S.INITIATING, reason="x", run_id=RUN, now=T0)


def test_two_writers_of_one_row_cannot_both_win(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    with ledger.unit_of_work() as first, ledger.unit_of_work() as second:
        mine = first.numbers.get(ACCOUNT, e164)
        theirs = second.numbers.get(ACCOUNT, e164)
        assert mine is not None and theirs is not None
        first.numbers.transition(mine, S.ALREADY_VERIFIED, reason="listed", run_id=RUN, now=T0)
        first.commit()
        second.numbers.transition(theirs, S.INITIATING, reason="initiate", run_id=RUN, now=T0)
        with pytest.raises(ConcurrentUpdateError, match="nothing was saved"):
            second.commit()
    assert statuses(ledger) == {e164: "already_verified"}


def test_touch_changes_fields_without_an_event(ledger: Ledger) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    drive(ledger, e164, S.INITIATING)
    before = _events(ledger)
    later = T0 + timedelta(seconds=20)
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, e164)
        assert row is not None
        uow.numbers.touch(row, now=later, initiated_at=later, expires_at=later + OTP_WINDOW)
        with pytest.raises(TypeError):
            uow.numbers.touch(row, now=later, status="queued")
        uow.commit()
    row = number(ledger, e164)
    assert (row.status, row.initiated_at, row.updated_at) == ("initiating", later, later)
    assert _events(ledger) == before


def test_expire_due_requeues_while_attempts_are_left_then_fails(ledger: Ledger) -> None:
    register(ledger, 3)
    a, b, c = e164s(3)
    drive(ledger, a, S.INITIATING, S.INITIATED, now=T0)
    drive(ledger, b, S.INITIATING, S.INITIATED, now=T0 + timedelta(minutes=5))
    end_a = T0 + OTP_WINDOW
    with ledger.unit_of_work() as uow:
        assert uow.numbers.expire_due(ACCOUNT, end_a - timedelta(seconds=1), RUN, 2) == []
        expired = uow.numbers.expire_due(ACCOUNT, end_a, RUN, 2)
        uow.commit()
    assert [n.e164 for n in expired] == [a]
    assert statuses(ledger) == {a: "queued", b: "initiated", c: "queued"}
    assert number(ledger, a).last_error == "no code within the OTP window"
    with ledger.unit_of_work() as uow:
        history = [(e.from_status, e.to_status) for e in uow.events.history(ACCOUNT, a)]
    assert history[-2:] == [("initiated", "expired"), ("expired", "queued")]
    # Second attempt for a, with a budget of 2: it fails when this window ends too.
    later = T0 + timedelta(minutes=20)
    drive(ledger, a, S.INITIATING, S.INITIATED, now=later)
    with ledger.unit_of_work() as uow:
        uow.numbers.expire_due(ACCOUNT, later + OTP_WINDOW, RUN, 2)
        uow.commit()
    assert statuses(ledger) == {a: "failed", b: "queued", c: "queued"}
    assert number(ledger, a).attempts == 2


def test_runs_are_started_finished_and_restarted(ledger: Ledger) -> None:
    from callerid.ledger import RunNotFoundError

    with ledger.unit_of_work() as uow:
        run = uow.runs.start_run(
            "r-1",
            ACCOUNT,
            input_path="in.csv",
            input_sha256="ab" * 32,
            parameters={"x": 1},
            now=T0,
        )
        fresh = uow.runs.start_run(None, ACCOUNT, now=T0 + timedelta(seconds=1))
        uow.commit()
    assert run.id == "r-1" and len(fresh.id) == 36
    with ledger.unit_of_work() as uow:
        done = uow.runs.finish_run("r-1", {"verified": 3}, T0 + timedelta(minutes=5))
        uow.commit()
        assert done.counts == {"verified": 3} and done.finished_at == T0 + timedelta(minutes=5)
        again = uow.runs.start_run("r-1", ACCOUNT, now=T0 + timedelta(hours=1))
        uow.commit()
        assert again.finished_at is None and again.started_at == T0
        assert again.input_sha256 == "ab" * 32 and again.parameters == {"x": 1}
        assert [r.id for r in uow.runs.latest(ACCOUNT)] == [fresh.id, "r-1"]
        with pytest.raises(RunNotFoundError):
            uow.runs.finish_run("nope", {}, T0)
        events = uow.session.execute(select(func.count()).select_from(Event)).scalar_one()
        assert events == 0
