"""One matcher for every source (design.md, "OTP matching").

For a `new` message: the number is `From` if that number has a live verification, else `To`, else
the one waiting number written in the text; the code is the one 4-8 digit group of the text that
is not part of a phone number. A message received before the number's current initiation is
stale. No number, no code, or two candidates: the message keeps a status and a note for a person
(`callerid inbox list` / `assign`); nothing is dropped.

A match does not change the message: the completer submits the code and then calls
`store.mark_used` (or `store.mark_rejected`), so a crash in between loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerid.inbox import store
from callerid.inbox.models import MatchedCode, as_utc
from callerid.inbox.text import DEFAULT_REGION, TextReading, normalise_number, read_text
from callerid.ledger.models import InboxMessage, InboxStatus, Number, NumberStatus

ASSIGNED_NOTE = "assigned by a person"
# Numbers whose verification is being started or completed right now: a message naming one of them
# waits for the next pass instead of being written off as unmatched.
_IN_PASSING = (NumberStatus.INITIATING.value, NumberStatus.COMPLETING.value)


@dataclass(frozen=True)
class LiveVerification:
    e164: str
    verification_uuid: str
    initiated_at: datetime


@dataclass(frozen=True)
class Outcome:
    """What the matcher decided for one message; `status` NEW with a number means matched."""

    status: InboxStatus
    e164: str | None = None
    code: str | None = None
    note: str | None = None


def _number_for(
    row: InboxMessage, live: Mapping[str, LiveVerification], reading: TextReading, region: str
) -> tuple[str | None, Outcome | None]:
    for raw in (row.from_number, row.to_number):
        e164 = normalise_number(raw, region)
        if e164 in live:
            return e164, None
    named = [n for n in reading.numbers if n in live]
    if len(named) == 1:
        return named[0], None
    if len(named) > 1:
        return None, Outcome(InboxStatus.AMBIGUOUS, note=f"text names {len(named)} waiting numbers")
    return None, None


def classify(
    row: InboxMessage,
    live: Mapping[str, LiveVerification],
    passing: frozenset[str] = frozenset(),
    region: str = DEFAULT_REGION,
) -> Outcome:
    """Decide one message against the account's live verifications (pure: writes nothing)."""
    if row.matched_e164 and row.code and row.note == ASSIGNED_NOTE:
        if row.matched_e164 in live:
            return Outcome(InboxStatus.NEW, row.matched_e164, row.code)
        if row.matched_e164 in passing:
            return Outcome(InboxStatus.NEW, note="waiting for the number's verification")
        return Outcome(InboxStatus.UNMATCHED, note=f"{row.matched_e164} is not waiting for a code")
    reading = read_text(row.text, region)  # the costly part: once per message
    e164, decided = _number_for(row, live, reading, region)
    if decided is not None:
        return decided
    code = reading.code
    if e164 is None:
        named = {normalise_number(row.from_number, region), normalise_number(row.to_number, region)}
        if passing & (named | set(reading.numbers)):
            return Outcome(InboxStatus.NEW, note="waiting for the number's verification")
        return Outcome(
            InboxStatus.UNMATCHED, code=code, note="no waiting number in From, To or text"
        )
    if not reading.codes:
        return Outcome(InboxStatus.UNMATCHED, e164, note="no 4-8 digit code in the text")
    if code is None:
        return Outcome(InboxStatus.AMBIGUOUS, e164, note=f"{len(reading.codes)} candidate codes")
    if as_utc(row.received_at) < as_utc(live[e164].initiated_at):
        return Outcome(InboxStatus.STALE, e164, code, "received before the current initiation")
    return Outcome(InboxStatus.NEW, e164, code)


def _live_map(rows: Iterable[Any]) -> dict[str, LiveVerification]:
    found: dict[str, LiveVerification] = {}
    for row in rows:
        if row.verification_uuid and row.initiated_at is not None:
            found[row.e164] = LiveVerification(row.e164, row.verification_uuid, row.initiated_at)
    return found


def _passing(session: Session, account: str) -> frozenset[str]:
    query = select(Number.e164).where(Number.account == account, Number.status.in_(_IN_PASSING))
    return frozenset(session.execute(query).scalars())


def match_rows(
    session: Session,
    account: str,
    live: Mapping[str, LiveVerification],
    *,
    write: bool = True,
    region: str = DEFAULT_REGION,
    rows: Sequence[InboxMessage] | None = None,
) -> list[MatchedCode]:
    """Classify every `new` message; with `write`, settle the ones that cannot be matched.

    One code per number per pass: the newest message wins; older ones stay `new` and come up
    again if the newest code is refused. `rows`: the `new` messages, read *before* `live` (see
    `match_new_messages`); read here, before the numbers in passing, when not given.
    """
    if rows is None:
        rows = store.new_rows(session, account)
    passing = _passing(session, account)
    best: dict[str, MatchedCode] = {}
    for row in rows:
        outcome = classify(row, live, passing, region)
        if outcome.status is InboxStatus.NEW:
            if outcome.e164 and outcome.code:
                verification = live[outcome.e164]
                best[outcome.e164] = MatchedCode(
                    outcome.e164, verification.verification_uuid, outcome.code, row.id
                )
            continue
        if write:
            store.set_status(
                session,
                row.id,
                outcome.status,
                matched_e164=outcome.e164,
                code=outcome.code,
                note=outcome.note,
            )
    return sorted(best.values(), key=lambda m: m.message_id)


def match_new_messages(uow: Any, account: str, now: datetime) -> list[MatchedCode]:
    """The matcher pass the flows run: `uow` is the ledger's unit of work (not committed here).

    The messages are read before the numbers' states. Each read sees what was committed when it
    ran (SQLite's driver does not hold one snapshot for SELECTs; PostgreSQL reads committed), and
    a code can only arrive after its number's intent row was committed: so a message read first
    finds its number at least `initiating` (it waits) or `initiated` (it matches). Read the other
    way round, a code that came in between the reads met a number still `queued` and was written
    off as unmatched, leaving the number to wait out its 15 minutes (seen under load).
    """
    rows = store.new_rows(uow.session, account)
    live = _live_map(uow.numbers.live_verifications(account, now))
    return match_rows(uow.session, account, live, rows=rows)


def numbers_with_codes(uow: Any, account: str, numbers: Iterable[str], now: datetime) -> set[str]:
    """Which of `numbers` have a usable code waiting in the inbox (reads only)."""
    wanted = set(numbers)
    rows = store.new_rows(uow.session, account)
    live = _live_map(uow.numbers.live_verifications(account, now))
    matches = match_rows(uow.session, account, live, write=False, rows=rows)
    return {m.e164 for m in matches if m.e164 in wanted}
