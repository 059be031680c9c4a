"""The state machine table, its side effects, the recovery decisions and the errors (no I/O)."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest

from callerid.ledger import (
    ALLOWED,
    FINAL_STATUSES,
    OTP_WINDOW,
    ConcurrentUpdateError,
    IllegalTransitionError,
    InvalidRecordError,
    NumberRecord,
    NumberStatus,
    RunNotFoundError,
    resolve_url,
)
from callerid.ledger.recovery import Action, Interrupted, decide, window_end
from callerid.ledger.states import after_expiry, check_fields, is_allowed, side_effects
from callerid.ledger.upsert import as_record
from callerid.settings import load_settings
from tests.ledger_support import T0

S = NumberStatus


def test_every_status_has_a_row_and_no_status_moves_to_itself() -> None:
    assert set(ALLOWED) == set(NumberStatus)
    for source, targets in ALLOWED.items():
        assert source not in targets


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.QUEUED, S.INITIATING),
        (S.INITIATING, S.INITIATED),
        (S.INITIATING, S.QUEUED),
        (S.INITIATED, S.COMPLETING),
        (S.COMPLETING, S.VERIFIED),
        (S.COMPLETING, S.INITIATED),
        (S.INITIATED, S.EXPIRED),
        (S.EXPIRED, S.QUEUED),
        (S.EXPIRED, S.FAILED),
        (S.INITIATED, S.FAILED),
        (S.QUEUED, S.ALREADY_VERIFIED),
        (S.FAILED, S.VERIFIED),
        (S.VERIFIED, S.QUEUED),
    ],
)
def test_the_designed_moves_are_allowed(source: NumberStatus, target: NumberStatus) -> None:
    assert is_allowed(source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.QUEUED, S.INITIATED),  # skipping the intent row would break crash recovery
        (S.QUEUED, S.COMPLETING),
        (S.INITIATED, S.INITIATING),  # a second OTP while the first may be valid
        (S.INITIATED, S.QUEUED),  # only through expired, after the window
        (S.COMPLETING, S.QUEUED),
        (S.VERIFIED, S.FAILED),
        (S.VERIFIED, S.INITIATING),
        (S.FAILED, S.INITIATING),
        (S.EXPIRED, S.INITIATING),
    ],
)
def test_moves_that_would_break_a_promise_are_not(
    source: NumberStatus, target: NumberStatus
) -> None:
    assert not is_allowed(source, target)


def test_only_a_possible_send_counts_an_attempt() -> None:
    assert side_effects(S.INITIATING, S.INITIATED, 1) == {"attempts": 2}
    assert side_effects(S.INITIATING, S.EXPIRED, 0) == {"attempts": 1}
    assert side_effects(S.INITIATING, S.QUEUED, 1) == {}  # not sent
    assert side_effects(S.INITIATING, S.FAILED, 1) == {}
    assert side_effects(S.COMPLETING, S.EXPIRED, 1) == {}  # counted when it was initiated


def test_requeueing_a_final_number_starts_it_afresh() -> None:
    for final in FINAL_STATUSES:
        changes = side_effects(final, S.QUEUED, 3)
        assert changes["attempts"] == 0 and changes["wrong_otps"] == 0
        assert changes["verification_uuid"] is None and changes["last_error"] is None
    assert side_effects(S.EXPIRED, S.QUEUED, 1) == {}  # a retry within the same budget


def test_expired_numbers_go_back_while_attempts_are_left() -> None:
    assert after_expiry(1, 2) is S.QUEUED
    assert after_expiry(2, 2) is S.FAILED
    assert after_expiry(3, 2) is S.FAILED


def test_fields_outside_the_mutable_set_are_refused() -> None:
    check_fields({"last_error": "x", "attempts": 1})
    with pytest.raises(TypeError, match="status"):
        check_fields({"status": "verified"})
    with pytest.raises(TypeError, match="e164"):
        check_fields({"e164": "+1"})


def _n(status: NumberStatus, *, at_min: float = 0, updated_min: float = 0, uuid: str | None = "u"):  # type: ignore[no-untyped-def]
    start = T0 + timedelta(minutes=at_min)
    return Interrupted(
        "+14155550000", status, start, start + OTP_WINDOW, T0 + timedelta(minutes=updated_min), uuid
    )


@pytest.mark.parametrize(
    ("interrupted", "listed", "minutes_later", "action"),
    [
        (_n(S.INITIATING), True, 1, Action.VERIFY),
        (_n(S.INITIATING), False, 1, Action.WAIT),
        (_n(S.INITIATING), False, 14.9, Action.WAIT),
        (_n(S.INITIATING), False, 15, Action.EXPIRE),
        # Restamped after an unknown outcome: the window counts from the restamp.
        (_n(S.INITIATING, updated_min=3), False, 16, Action.WAIT),
        (_n(S.INITIATING, updated_min=3), False, 18, Action.EXPIRE),
        (_n(S.COMPLETING), True, 30, Action.VERIFY),
        (_n(S.COMPLETING), False, 5, Action.RESUME),
        (_n(S.COMPLETING), False, 15, Action.EXPIRE),
        # A completing row's window is the real one: a later touch does not extend it.
        (_n(S.COMPLETING, updated_min=10), False, 16, Action.EXPIRE),
        (_n(S.COMPLETING, uuid=None), False, 5, Action.WAIT),
    ],
)
def test_recovery_decisions(
    interrupted: Interrupted, listed: bool, minutes_later: float, action: Action
) -> None:
    assert decide(interrupted, listed, T0 + timedelta(minutes=minutes_later)) is action


def test_window_end_of_an_intent_row_without_timestamps_falls_back_to_the_claim() -> None:
    row = Interrupted("+14155550000", S.INITIATING, None, None, T0, None)
    assert window_end(row) == T0 + OTP_WINDOW


@pytest.mark.parametrize(
    "error",
    [
        IllegalTransitionError("+14155550000", "queued", "verified"),
        ConcurrentUpdateError("UPDATE statement on table 'numbers' expected 1 row"),
        InvalidRecordError(3, "e164 must look like +15551234567, got ''"),
        RunNotFoundError("run-9"),
    ],
)
def test_errors_survive_a_pickle_round_trip(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args


def test_illegal_transition_error_names_the_number_and_the_move() -> None:
    error = IllegalTransitionError("+14155550000", "queued", "verified")
    assert str(error) == "+14155550000: queued -> verified is not allowed"


def test_records_come_from_ingest_rows_mappings_or_records() -> None:
    class Row:  # the shape of ingest's AcceptedRow: `region`, an enum channel
        e164 = "+442079460000"
        alias = ""
        subaccount = None
        region = "gb"
        channel = "call"

    assert as_record(0, Row()) == NumberRecord("+442079460000", None, None, "GB", "call")
    mapping = {"e164": "+14155550000", "alias": "desk", "channel": None}
    assert as_record(1, mapping) == NumberRecord("+14155550000", "desk", None, None, "sms")
    for bad in ({"e164": ""}, {"e164": "4155550000"}, {"alias": "x"}, {"e164": "+1 415"}):
        with pytest.raises(InvalidRecordError, match="record 7: e164"):
            as_record(7, bad)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (NumberRecord("+1415"), "e164 \\+1415 has 4 digits"),
        (NumberRecord("+1" + "5" * 15), "e164 \\+15+ has 16 digits"),
        (NumberRecord("+14155550000", channel="fax"), "channel must be sms or call"),
        (NumberRecord("+14155550000", country="USA"), "country must be 2 letters"),
        (NumberRecord("+14155550000", alias="a" * 65), "alias is longer than 64"),
        (NumberRecord("+14155550000", subaccount="S" * 33), "subaccount is longer than 32"),
    ],
)
def test_records_over_the_columns_limits_are_refused(record: NumberRecord, problem: str) -> None:
    with pytest.raises(InvalidRecordError, match=f"record 0: {problem}"):
        as_record(0, record)


def test_database_url_precedence_and_driver(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CALLERID_DATABASE_URL", raising=False)
    monkeypatch.setenv("CALLERID_OUTPUT_DIR", str(tmp_path))
    assert resolve_url().database == str(tmp_path / "ledger.sqlite3")
    monkeypatch.setenv("CALLERID_DATABASE_URL", "postgresql://u:pw@db:5432/ledger")
    url = resolve_url()
    assert url.drivername == "postgresql+psycopg" and url.database == "ledger"
    assert resolve_url("sqlite:///x.db").database == "x.db"  # an argument beats the environment
    settings = load_settings(database_url="postgresql+psycopg://h/other")
    assert resolve_url(settings=settings).database == "other"
