"""The matcher's decision for one message (design.md, "OTP matching"), without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callerid.inbox.matcher import ASSIGNED_NOTE, STALE_TOLERANCE, LiveVerification, classify
from callerid.ledger.models import InboxMessage, InboxStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
A, B, INBOX = "+14155550123", "+14155550124", "+15005550100"
LIVE = {
    A: LiveVerification(A, "uuid-a", T0),
    B: LiveVerification(B, "uuid-b", T0),
}


def message(
    text: str,
    sender: str | None = "14155550123",
    to: str | None = "15005550100",
    at: datetime = T0 + timedelta(seconds=30),
    **extra: object,
) -> InboxMessage:
    return InboxMessage(from_number=sender, to_number=to, text=text, received_at=at, **extra)


@pytest.mark.parametrize(
    ("msg", "status", "e164", "code"),
    [
        (message("Your verification code is 4821"), InboxStatus.NEW, A, "4821"),
        # From is not waiting; To is (a phone forwarding from another handset to the number)
        (message("code 4821", sender="14155559999", to=B.lstrip("+")), InboxStatus.NEW, B, "4821"),
        # neither From nor To is waiting; the text names the number
        (
            message(f"code 4821 for {B}", sender="x@example.com", to=None),
            InboxStatus.NEW,
            B,
            "4821",
        ),
        (message(f"{A} 1111 / {B} 2222", sender=None, to=None), InboxStatus.AMBIGUOUS, None, None),
        (message("Your code is 4821", sender="14155559999"), InboxStatus.UNMATCHED, None, "4821"),
        (message("Thanks, no code"), InboxStatus.UNMATCHED, A, None),
        (message("4821 or 9999"), InboxStatus.AMBIGUOUS, A, None),
        (message("code 4821", at=T0 - timedelta(seconds=6)), InboxStatus.STALE, A, "4821"),
        # stamped in whole seconds, or by a clock a little behind ours: within the tolerance
        (message("code 4821", at=T0 - timedelta(seconds=1)), InboxStatus.NEW, A, "4821"),
        (message("code 4821", at=T0 - STALE_TOLERANCE), InboxStatus.NEW, A, "4821"),
        # naive timestamps (SQLite gives them back so) are UTC
        (message("code 4821", at=datetime(2026, 1, 1, 12, 0, 5)), InboxStatus.NEW, A, "4821"),
    ],
)
def test_classify(
    msg: InboxMessage, status: InboxStatus, e164: str | None, code: str | None
) -> None:
    outcome = classify(msg, LIVE)
    assert (outcome.status, outcome.e164, outcome.code) == (status, e164, code)
    if status is not InboxStatus.NEW:
        assert outcome.note  # a person reading `inbox list` learns why


def test_a_number_being_initiated_waits_instead_of_unmatched() -> None:
    msg = message("code 4821", sender="14155559999")
    assert classify(msg, LIVE).status is InboxStatus.UNMATCHED
    waiting = classify(msg, LIVE, waiting=frozenset({"+14155559999"}))
    assert (waiting.status, waiting.e164) == (InboxStatus.NEW, None)


def test_a_sender_not_live_yet_waits_even_when_to_names_a_live_number() -> None:
    # From is the account's number still being initiated; To happens to be another live number.
    msg = message("code 4821", sender="14155559999", to=B.lstrip("+"))
    outcome = classify(msg, LIVE, waiting=frozenset({"+14155559999"}))
    assert (outcome.status, outcome.e164, outcome.code) == (InboxStatus.NEW, None, None)


def test_a_code_of_an_earlier_verification_is_stale_even_within_the_tolerance() -> None:
    msg = message("code 4821", at=T0 - timedelta(seconds=1))
    outcome = classify(msg, LIVE, earlier_codes={A: frozenset({"4821"})})
    assert (outcome.status, outcome.e164) == (InboxStatus.STALE, A)
    assert outcome.note == "carries the code of an earlier verification"
    fresh = classify(
        message("code 5555", at=T0 - timedelta(seconds=1)),
        LIVE,
        earlier_codes={A: frozenset({"4821"})},
    )
    assert fresh.status is InboxStatus.NEW


def test_assigned_by_a_person_wins_over_the_text() -> None:
    msg = message("two codes 1111 2222", matched_e164=B, code="2222", note=ASSIGNED_NOTE)
    outcome = classify(msg, LIVE)
    assert (outcome.status, outcome.e164, outcome.code) == (InboxStatus.NEW, B, "2222")
    gone = classify(msg, {A: LIVE[A]})
    assert gone.status is InboxStatus.UNMATCHED


def test_a_code_for_a_number_verified_in_its_window_is_used_not_unmatched() -> None:
    """A killed run submitted it (the account lists the number) but never marked it used."""
    msg = message("code 4821", sender="14155559999")
    window = {"+14155559999": (T0, T0 + timedelta(minutes=15))}
    outcome = classify(msg, LIVE, verified=window)
    assert (outcome.status, outcome.e164, outcome.code) == (
        InboxStatus.USED,
        "+14155559999",
        "4821",
    )
    later = message("code 4821", sender="14155559999", at=T0 + timedelta(minutes=16))
    assert classify(later, LIVE, verified=window).status is InboxStatus.UNMATCHED
