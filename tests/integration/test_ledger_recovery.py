"""Crash recovery on file SQLite and PostgreSQL: rows left in `initiating` / `completing`.

A "crash" here is exactly what a killed process leaves: the claim (intent row) committed, the
API call's outcome never recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from callerid.ledger import (
    OTP_WINDOW,
    Ledger,
    NumberStatus,
    open_ledger,
    recover_interrupted,
    recover_interrupted_async,
)
from tests.ledger_support import ACCOUNT, RUN, T0, drive, e164s, number, register, statuses

S = NumberStatus


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with open_ledger(db_url) as opened:
        yield opened


def _claim_then_crash(ledger: Ledger, n: int, now: datetime = T0) -> list[str]:
    with ledger.unit_of_work() as uow:
        rows = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, n, now, RUN, "initiate")
        uow.commit()
    return [r.e164 for r in rows]


def _recover(
    ledger: Ledger,
    now: datetime,
    listed: frozenset[str] = frozenset(),
    max_attempts: int | None = None,
) -> dict[str, int]:
    with ledger.unit_of_work() as uow:
        counts = recover_interrupted(
            uow, ACCOUNT, now, lambda e: e in listed, "rerun", max_attempts=max_attempts
        )
        uow.commit()
    return counts


def test_no_second_otp_while_the_first_may_be_valid(ledger: Ledger) -> None:
    """The promise, minute by minute: recover and try to claim, as a rerun's loop would."""
    register(ledger, 1)
    (e164,) = _claim_then_crash(ledger, 1)
    second_claim_at = None
    for minute in range(0, 21):
        now = T0 + timedelta(minutes=minute)
        _recover(ledger, now, max_attempts=3)
        with ledger.unit_of_work() as uow:
            got = uow.numbers.claim(ACCOUNT, [S.QUEUED], S.INITIATING, 10, now, "rerun", "x")
            uow.commit()
        if got:
            second_claim_at = now
            break
    assert second_claim_at == T0 + OTP_WINDOW
    row = number(ledger, e164)
    assert (row.status, row.attempts) == ("initiating", 1)  # the lost attempt was counted
    with ledger.unit_of_work() as uow:
        moves = [(e.from_status, e.to_status) for e in uow.events.history(ACCOUNT, e164)]
    assert moves == [
        (None, "queued"),
        ("queued", "initiating"),
        ("initiating", "expired"),
        ("expired", "queued"),
        ("queued", "initiating"),
    ]


def test_an_interrupted_number_the_account_lists_is_verified(ledger: Ledger) -> None:
    register(ledger, 3)
    a, b, c = e164s(3)
    drive(ledger, a, S.INITIATING)
    drive(ledger, b, S.INITIATING, S.INITIATED, S.COMPLETING)
    drive(ledger, c, S.INITIATING, S.INITIATED, S.COMPLETING)
    # Long after every window: listing still wins, nothing verified is lost.
    counts = _recover(ledger, T0 + timedelta(hours=2), listed=frozenset({a, b}))
    assert counts == {"verified": 2, "expired": 1}
    assert statuses(ledger) == {a: "verified", b: "verified", c: "expired"}
    assert "interrupted while completing" in (number(ledger, c).last_error or "")


def test_an_interrupted_completion_goes_back_to_initiated_inside_its_window(
    ledger: Ledger,
) -> None:
    register(ledger, 1)
    (e164,) = e164s(1)
    drive(ledger, e164, S.INITIATING, S.INITIATED, S.COMPLETING)
    assert _recover(ledger, T0 + timedelta(minutes=3)) == {"resumed": 1}
    assert statuses(ledger) == {e164: "initiated"}
    with ledger.unit_of_work() as uow:
        live = uow.numbers.live_verifications(ACCOUNT, T0 + timedelta(minutes=3))
        assert [n.e164 for n in live] == [e164]  # the matcher will offer its code again
    assert number(ledger, e164).attempts == 1


def test_an_interrupted_intent_waits_untouched_inside_its_window(ledger: Ledger) -> None:
    register(ledger, 2)
    claimed = _claim_then_crash(ledger, 2)
    before = {e: number(ledger, e).updated_at for e in claimed}
    assert _recover(ledger, T0 + OTP_WINDOW - timedelta(seconds=1), max_attempts=2) == {}
    assert set(statuses(ledger).values()) == {"initiating"}
    assert {e: number(ledger, e).updated_at for e in claimed} == before  # not restamped


def test_a_restamped_intent_waits_from_the_restamp(ledger: Ledger) -> None:
    """An initiate whose outcome was unknown is restamped when the call gave up."""
    register(ledger, 1)
    (e164,) = _claim_then_crash(ledger, 1)
    gave_up = T0 + timedelta(seconds=40)
    with ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, e164)
        assert row is not None
        uow.numbers.touch(row, now=gave_up, initiated_at=gave_up, expires_at=gave_up + OTP_WINDOW)
        uow.commit()
    assert _recover(ledger, T0 + OTP_WINDOW) == {}
    assert _recover(ledger, gave_up + OTP_WINDOW) == {"expired": 1}


def test_without_max_attempts_expired_numbers_wait_for_expire_due(ledger: Ledger) -> None:
    register(ledger, 2)
    a, b = e164s(2)
    drive(ledger, a, S.INITIATING, S.INITIATED, S.EXPIRED, S.QUEUED)  # attempt 1 used
    _claim_then_crash(ledger, 2, now=T0 + timedelta(minutes=20))
    later = T0 + timedelta(minutes=40)
    assert _recover(ledger, later) == {"expired": 2}
    assert statuses(ledger) == {a: "expired", b: "expired"}
    with ledger.unit_of_work() as uow:
        settled = uow.numbers.expire_due(ACCOUNT, later, "rerun", 2)
        uow.commit()
    assert len(settled) == 2
    assert statuses(ledger) == {a: "failed", b: "queued"}
    assert (number(ledger, a).attempts, number(ledger, b).attempts) == (2, 1)


def test_recovery_with_max_attempts_settles_at_once(ledger: Ledger) -> None:
    register(ledger, 1)
    _claim_then_crash(ledger, 1)
    assert _recover(ledger, T0 + timedelta(hours=1), max_attempts=1) == {"failed": 1}


def test_other_accounts_and_other_states_are_not_touched(ledger: Ledger) -> None:
    register(ledger, 2)
    register(ledger, 1, account="MAOTHER")
    a, b = e164s(2)
    drive(ledger, a, S.INITIATING, S.INITIATED)
    with ledger.unit_of_work() as uow:
        uow.numbers.claim("MAOTHER", [S.QUEUED], S.INITIATING, 1, T0, RUN, "initiate")
        uow.commit()
    assert _recover(ledger, T0 + timedelta(hours=1), listed=frozenset(e164s(3))) == {}
    assert statuses(ledger) == {a: "initiated", b: "queued"}
    assert set(statuses(ledger, "MAOTHER").values()) == {"initiating"}


async def test_the_async_variant_asks_once_per_interrupted_number(ledger: Ledger) -> None:
    register(ledger, 4)
    a, b, c, _ = e164s(4)
    drive(ledger, a, S.INITIATING)
    drive(ledger, b, S.INITIATING)
    drive(ledger, c, S.INITIATING, S.INITIATED, S.COMPLETING)
    asked: list[str] = []

    async def lookup(e164: str) -> bool:
        asked.append(e164)
        return e164 == a

    with ledger.unit_of_work() as uow:
        counts = await recover_interrupted_async(
            uow, ACCOUNT, T0 + timedelta(minutes=1), lookup, "rerun"
        )
        uow.commit()
    assert asked == [a, b, c]
    assert counts == {"verified": 1, "resumed": 1}
    assert statuses(ledger)[a] == "verified" and statuses(ledger)[b] == "initiating"


def test_rows_changed_after_the_decision_time_are_left_to_their_process(ledger: Ledger) -> None:
    """Another worker on the same ledger claimed this completion a moment ago: hands off."""
    register(ledger, 1)
    (e164,) = e164s(1)
    claimed_at = T0 + timedelta(minutes=1)
    drive(ledger, e164, S.INITIATING, S.INITIATED, S.COMPLETING, now=claimed_at)
    assert _recover(ledger, claimed_at - timedelta(seconds=30)) == {}
    with ledger.unit_of_work() as uow:
        later = claimed_at + timedelta(minutes=1)
        wide = recover_interrupted(
            uow, ACCOUNT, later, lambda e: False, "w2", min_age=timedelta(minutes=2)
        )
    assert wide == {} and statuses(ledger) == {e164: "completing"}
    assert _recover(ledger, claimed_at + timedelta(minutes=2)) == {"resumed": 1}
