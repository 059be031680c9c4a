"""One matcher for every source (design.md, "OTP matching").

For a `new` message: the number is `From` if that number has a live verification, else `To`, else
the one live number written in the text; the code is the one 4-8 digit group of the text that is
not part of a phone number. No number, no code, or two candidates: the message keeps a status and
a note for a person (`callerid inbox list` / `assign`); nothing is dropped.

Two rules keep a code from being written off while it could still be used (issue 14):

* One snapshot. A pass reads the new messages and the state of every number they name inside one
  read transaction (`ledger.snapshot`): no commit lands between its reads, so a message and the
  numbers it names are seen as of one moment.
* Structurally, a message naming a number of the account that is not final and whose window has
  not ended (initiating, completing; queued, expired or initiated with its window open or not yet
  started) is never written off as "no waiting number": it stays `new` and is decided again on a
  later pass, once that number is `initiated`. Only a message that names no such number is
  unmatched.

Staleness: a message is stale when it was received more than `STALE_TOLERANCE` before the
number's current initiation (sources stamp in whole seconds, e.g. an e-mail's Date header, and a
gateway's clock may run a little behind ours), or when it carries the code of an earlier
verification of that number that the inbox still knows.

A match does not change the message: the completer submits the code and then calls
`store.mark_used` (or `store.mark_rejected`), so a crash in between loses nothing; in the same
transaction `settle_used_copies` settles the other copies of a code that verified its number.
A message settled stale, or assigned by a person to a number that is not waiting, has its code
retired at once (`store.retire`: masked, fingerprint kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerid.inbox import store
from callerid.inbox.models import MatchedCode, as_utc
from callerid.inbox.text import DEFAULT_REGION, TextReading, normalise_number, read_text
from callerid.ledger.models import FINAL_STATUSES, InboxMessage, InboxStatus, Number, NumberStatus
from callerid.ledger.snapshot import begin_snapshot

ASSIGNED_NOTE = "assigned by a person"
WAITING_NOTE = "waiting for the number's verification"
USED_NOTE = "the number was verified with this code"
COPY_NOTE = "a copy of the code the number was verified with"
# How much older than the number's initiation a message may be stamped and still count as a
# reply to it: whole-second stamps (an e-mail Date header) lose up to 1 s, and an SMS gateway's
# clock may be a few seconds behind ours.
STALE_TOLERANCE = timedelta(seconds=5)
_CHUNK = 500  # IN (...) lists stay well under every database's parameter limit


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


@dataclass(frozen=True)
class NumberState:
    """One number of the account as the pass's snapshot saw it (plain values)."""

    e164: str
    status: str
    verification_uuid: str | None
    initiated_at: datetime | None
    expires_at: datetime | None

    def live(self, now: datetime) -> LiveVerification | None:
        """Its verification, when a code can complete it now."""
        if (
            self.status == NumberStatus.INITIATED.value
            and self.verification_uuid
            and self.initiated_at is not None
            and self.expires_at is not None
            and as_utc(self.expires_at) > now
        ):
            return LiveVerification(self.e164, self.verification_uuid, self.initiated_at)
        return None

    def verified_window(self) -> tuple[datetime, datetime] | None:
        """The window of the verification that verified it, when the ledger knows it."""
        if (
            self.status == NumberStatus.VERIFIED.value
            and self.initiated_at is not None
            and self.expires_at is not None
        ):
            return as_utc(self.initiated_at), as_utc(self.expires_at)
        return None

    def waiting(self, now: datetime) -> bool:
        """Not final and its window not over: a message naming it must not be written off.

        `initiating` / `completing`: mid-call (a reply may land before the initiate's answer is
        recorded). `queued` / `expired` / `initiated`: until the current window ends (a number
        never initiated has none yet); a queued number whose last window is over has nothing a
        message could still complete, and a reply to its next initiation can only come after the
        claim that makes it `initiating`."""
        if self.status in FINAL_STATUSES:
            return False
        if self.status in (NumberStatus.INITIATING.value, NumberStatus.COMPLETING.value):
            return True
        return self.expires_at is None or as_utc(self.expires_at) > now


def _wait() -> Outcome:
    return Outcome(InboxStatus.NEW, note=WAITING_NOTE)


def _number_for(
    row: InboxMessage,
    live: Mapping[str, LiveVerification],
    waiting: frozenset[str],
    reading: TextReading,
    region: str,
) -> tuple[str | None, Outcome | None]:
    for raw in (row.from_number, row.to_number):
        e164 = normalise_number(raw, region)
        if e164 in live:
            return e164, None
        if e164 in waiting:  # its verification is not live yet (or any more, pending a retry)
            return None, _wait()
    named = [n for n in reading.numbers if n in live]
    if len(named) == 1:
        return named[0], None
    if len(named) > 1:
        return None, Outcome(InboxStatus.AMBIGUOUS, note=f"text names {len(named)} waiting numbers")
    if waiting.intersection(reading.numbers):
        return None, _wait()
    return None, None


def _verified_in_window(
    row: InboxMessage,
    reading: TextReading,
    verified: Mapping[str, tuple[datetime, datetime]],
    region: str,
) -> str | None:
    received = as_utc(row.received_at)
    named = [normalise_number(row.from_number, region), normalise_number(row.to_number, region)]
    for e164 in [*named, *reading.numbers]:
        window = verified.get(e164 or "")
        if window is not None and window[0] - STALE_TOLERANCE <= received <= window[1]:
            return e164
    return None


def _staleness(
    received_at: datetime,
    verification: LiveVerification,
    code: str,
    earlier_codes: Mapping[str, frozenset[str]],
) -> str | None:
    if as_utc(received_at) < as_utc(verification.initiated_at) - STALE_TOLERANCE:
        return "received before the current initiation"
    earlier = earlier_codes.get(verification.e164, frozenset())
    if any(store.is_fingerprint_of(known, verification.e164, code) for known in earlier):
        return "carries the code of an earlier verification"
    return None


def classify(
    row: InboxMessage,
    live: Mapping[str, LiveVerification],
    waiting: frozenset[str] = frozenset(),
    region: str = DEFAULT_REGION,
    *,
    earlier_codes: Mapping[str, frozenset[str]] | None = None,
    reading: TextReading | None = None,
    verified: Mapping[str, tuple[datetime, datetime]] | None = None,
) -> Outcome:
    """Decide one message (pure: writes nothing).

    `live`: the named numbers whose verification a code can complete now; `waiting`: the named
    numbers that are not final and whose window has not ended but that are not live (a message
    naming one waits); `earlier_codes`: per live number, codes of its earlier verifications;
    `verified`: named numbers that are verified, with the window of that verification.
    """
    if row.matched_e164 and row.code and row.note == ASSIGNED_NOTE:
        if row.matched_e164 in live:
            return Outcome(InboxStatus.NEW, row.matched_e164, row.code)
        if row.matched_e164 in waiting:
            return _wait()
        return Outcome(InboxStatus.UNMATCHED, note=f"{row.matched_e164} is not waiting for a code")
    if reading is None:
        reading = read_text(row.text, region)  # the costly part: once per message
    e164, decided = _number_for(row, live, waiting, reading, region)
    if decided is not None:
        return decided
    code = reading.code
    if e164 is None:
        used_by = _verified_in_window(row, reading, verified or {}, region)
        if used_by is not None and code is not None:
            # Its number was verified in this window (by a run killed before it could mark the
            # message used, or by a copy from another source): the code has been used.
            return Outcome(InboxStatus.USED, used_by, code, USED_NOTE)
        return Outcome(
            InboxStatus.UNMATCHED, code=code, note="no waiting number in From, To or text"
        )
    if not reading.codes:
        return Outcome(InboxStatus.UNMATCHED, e164, note="no 4-8 digit code in the text")
    if code is None:
        return Outcome(InboxStatus.AMBIGUOUS, e164, note=f"{len(reading.codes)} candidate codes")
    stale = _staleness(row.received_at, live[e164], code, earlier_codes or {})
    if stale is not None:
        return Outcome(InboxStatus.STALE, e164, code, stale)
    return Outcome(InboxStatus.NEW, e164, code)


def _named(row: InboxMessage, reading: TextReading | None, region: str) -> set[str]:
    found = {normalise_number(row.from_number, region), normalise_number(row.to_number, region)}
    if row.matched_e164:
        found.add(row.matched_e164)
    if reading is not None:
        found.update(reading.numbers)
    return {n for n in found if n}


def _states(session: Session, account: str, e164s: Iterable[str]) -> dict[str, NumberState]:
    wanted = sorted(e164s)
    found: dict[str, NumberState] = {}
    for i in range(0, len(wanted), _CHUNK):
        query = select(
            Number.e164,
            Number.status,
            Number.verification_uuid,
            Number.initiated_at,
            Number.expires_at,
        ).where(Number.account == account, Number.e164.in_(wanted[i : i + _CHUNK]))
        found.update({r.e164: NumberState(*r) for r in session.execute(query)})
    return found


def _earlier_codes(
    session: Session, account: str, live: Mapping[str, LiveVerification], e164s: Iterable[str]
) -> dict[str, frozenset[str]]:
    """Codes the inbox still knows from before each number's current initiation."""
    wanted = sorted(set(e164s))
    if not wanted:
        return {}
    query = select(InboxMessage.matched_e164, InboxMessage.code, InboxMessage.received_at).where(
        InboxMessage.matched_e164.in_(wanted),
        InboxMessage.code.is_not(None),
        InboxMessage.status != InboxStatus.NEW.value,
        (InboxMessage.account == account) | InboxMessage.account.is_(None),
    )
    codes: dict[str, set[str]] = {}
    for e164, code, received_at in session.execute(query):
        verification = live.get(e164 or "")
        if verification and code and as_utc(received_at) < as_utc(verification.initiated_at):
            codes.setdefault(verification.e164, set()).add(code)
    return {e164: frozenset(found) for e164, found in codes.items()}


def _in_tolerance_band(row: InboxMessage, verification: LiveVerification | None) -> bool:
    if verification is None:
        return False
    start = as_utc(verification.initiated_at)
    return start - STALE_TOLERANCE <= as_utc(row.received_at) < start


def match_rows(
    session: Session,
    account: str,
    now: datetime,
    *,
    write: bool = True,
    region: str = DEFAULT_REGION,
) -> list[MatchedCode]:
    """Classify every `new` message of `account`; with `write`, settle the ones that cannot be
    matched. Reads what the session's transaction shows: run it in a snapshot
    (`match_new_messages` does).

    One code per number per pass: the newest message wins; older ones stay `new` and come up
    again if the newest code is refused.
    """
    rows = store.new_rows(session, account)
    assigned = [bool(r.matched_e164 and r.code and r.note == ASSIGNED_NOTE) for r in rows]
    readings = [
        None if a else read_text(r.text, region) for r, a in zip(rows, assigned, strict=True)
    ]
    names = [_named(r, rd, region) for r, rd in zip(rows, readings, strict=True)]
    states = _states(session, account, set().union(*names))
    live = {e: v for e, s in states.items() if (v := s.live(now)) is not None}
    waiting = frozenset(e for e, s in states.items() if e not in live and s.waiting(now))
    verified = {e: w for e, s in states.items() if (w := s.verified_window()) is not None}
    # Codes of earlier verifications are looked up only for messages stamped just before an
    # initiation (older ones are stale anyway): rarely any.
    band = {
        n
        for row, found in zip(rows, names, strict=True)
        for n in found
        if _in_tolerance_band(row, live.get(n))
    }
    earlier = _earlier_codes(session, account, live, band)
    best: dict[str, MatchedCode] = {}
    for row, reading, assigned_row in zip(rows, readings, assigned, strict=True):
        outcome = classify(
            row, live, waiting, region, earlier_codes=earlier, reading=reading, verified=verified
        )
        if outcome.status is InboxStatus.NEW:
            if outcome.e164 and outcome.code:
                verification = live[outcome.e164]
                best[outcome.e164] = MatchedCode(
                    outcome.e164, verification.verification_uuid, outcome.code, row.id
                )
            continue
        if write and outcome.status is InboxStatus.USED:
            store.mark_used(session, row.id, outcome.e164, outcome.code)
        elif write:
            store.set_status(
                session,
                row.id,
                outcome.status,
                matched_e164=outcome.e164,
                code=outcome.code,
                note=outcome.note,
            )
            if outcome.status is InboxStatus.STALE or assigned_row:
                # Dead codes, retired now (the fingerprint stays for `_earlier_codes`): a stale
                # message is never decided again (only `new` ones are), and an assigned one
                # settled here names a number that is not waiting (assigned again, it is `new`
                # with the code the person gives).
                store.retire(row)
    return sorted(best.values(), key=lambda m: m.message_id)


def settle_used_copies(
    session: Session,
    account: str,
    used: Mapping[str, str],
    now: datetime,
    *,
    region: str = DEFAULT_REGION,
) -> int:
    """Settle the copies of codes that have just verified their numbers: `used` maps each such
    number to its code. A pass hands one message per number, so a second copy of the same code
    (the SMS by webhook and by IMAP, the code typed on the page and the SMS) stays `new`, its
    code readable, after the number is final: every `new` message of `account` that carries
    that code for that number (read from its text, or assigned by a person) is marked used and
    retired here, in the caller's unit of work. Call it in a snapshot taken first in that unit
    of work (`record_completions` does), after the numbers' transitions.

    Left `new` for the matcher: a message with another code or several candidates (it may be
    the valid one of a number that is not final), and one that also names another number of
    the account that is not final and whose window has not ended. Returns how many settled."""
    if not used:
        return 0
    copies: list[tuple[InboxMessage, str, str, set[str]]] = []
    for row in store.new_rows(session, account):
        if row.matched_e164 and row.code and row.note == ASSIGNED_NOTE:
            if used.get(row.matched_e164) == row.code:  # the person said whose it is
                copies.append((row, row.matched_e164, row.code, set()))
            continue
        text = row.text or ""
        if not any(code in text for code in used.values()):
            continue  # cheap: no message is read for numbers unless it could be a copy
        reading = read_text(text, region)
        code = reading.code
        if code is None:
            continue
        named = _named(row, reading, region)
        owner = next((e for e in sorted(named) if used.get(e) == code), None)
        if owner is not None:
            copies.append((row, owner, code, named - {owner}))
    others = set().union(*(named for *_, named in copies))
    states = _states(session, account, others) if others else {}
    open_numbers = {e for e, s in states.items() if s.waiting(now)}
    settled = 0
    for row, owner, code, named in copies:
        if named & open_numbers:
            continue
        store.mark_used(session, row.id, owner, code, note=COPY_NOTE)
        settled += 1
    return settled


def match_new_messages(uow: Any, account: str, now: datetime) -> list[MatchedCode]:
    """The matcher pass the flows run: `uow` is a fresh unit of work of the ledger (not committed
    here). The pass's reads share one snapshot, taken with the write lock on SQLite since the
    pass writes (see `ledger.snapshot`): call it first in the unit of work."""
    begin_snapshot(uow.session, write=True)
    return match_rows(uow.session, account, now)


def numbers_with_codes(
    uow: Any, account: str, numbers: Sequence[str] | Iterable[str], now: datetime
) -> set[str]:
    """Which of `numbers` have a usable code waiting in the inbox (reads only; first in a fresh
    unit of work, like `match_new_messages`)."""
    wanted = set(numbers)
    begin_snapshot(uow.session, write=False)
    matches = match_rows(uow.session, account, now, write=False)
    return {m.e164 for m in matches if m.e164 in wanted}
