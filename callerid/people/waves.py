"""Waves: who must be told that a code is waiting, and the one message each owner gets.

A number needs a person when its verification is live (`initiated`), it has an owner, no message
has named it for this initiation yet, and either its channel is `call` (no inbox will ever see a
voice code) or `ask_after` has passed since the initiate without its SMS reaching any inbox.
A wave gathers every such number at one moment and sends each owner ONE message listing theirs,
with a signed link to the code page. A reminder goes when a third of the window is left and
codes are still missing; nothing is sent once the window has closed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callerid.inbox.form import pretty
from callerid.inbox.models import as_utc
from callerid.ledger.models import NotifiedNumber, Number, NumberStatus, RunNumber
from callerid.people.links import Link, sign
from callerid.people.mail import Mail

_CHUNK = 500
_Q = TypeVar("_Q", bound=Select[*tuple[Any, ...]])
WAITING_FOR_INITIATION = (
    NumberStatus.QUEUED.value,
    NumberStatus.INITIATING.value,
    NumberStatus.EXPIRED.value,
)


@dataclass(frozen=True, slots=True)
class RunMembers:
    """A run's numbers as the ledger records them (`run_numbers` rows), not as a list."""

    run_id: str


# The columns a `Waiting` is built from, in its field order (e164 .. expires_at).
WAITING_COLUMNS = (
    Number.e164,
    Number.alias,
    Number.owner,
    Number.channel,
    Number.initiated_at,
    Number.expires_at,
)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A number whose code a person must type, as plain values."""

    e164: str
    alias: str | None
    owner: str
    channel: str
    initiated_at: datetime
    expires_at: datetime
    at_once: bool = False  # the row asked for a person whatever the channel

    def asked_since(self, ask_after: timedelta) -> datetime:
        if self.channel == "call" or self.at_once:
            return self.initiated_at
        return self.initiated_at + ask_after


@dataclass(frozen=True, slots=True)
class OwnerMessage:
    """One owner's part of a wave: their numbers, the link naming them, the deadline to say."""

    owner: str
    numbers: tuple[Waiting, ...]
    token: str
    deadline: datetime  # the earliest window end (the time the message asks for)
    link_expires_at: datetime  # the latest window end (the link's expiry)
    window_start: datetime  # the earliest initiation (a reminder comes a third before the end)

    @property
    def remind_at(self) -> datetime:
        return self.deadline - (self.deadline - self.window_start) / 3


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _notified(session: Session, account: str, e164s: Sequence[str]) -> set[tuple[str, datetime]]:
    seen: set[tuple[str, datetime]] = set()
    for chunk in _chunks(e164s):
        query = select(NotifiedNumber.e164, NotifiedNumber.initiated_at).where(
            NotifiedNumber.account == account, NotifiedNumber.e164.in_(chunk)
        )
        seen.update((e, as_utc(t)) for e, t in session.execute(query) if t is not None)
    return seen


def _in_run(query: _Q, run_numbers: Iterable[str] | RunMembers) -> Iterable[_Q]:
    """`query` narrowed to the run's numbers: through its membership rows (one statement, whatever
    the run's size: the (account, status) index drives it and each row is probed in the run's
    primary key), or through the E.164s given, 500 to a statement."""
    if isinstance(run_numbers, RunMembers):
        member = (RunNumber.number_id == Number.id) & (RunNumber.run_id == run_numbers.run_id)
        yield query.join(RunNumber, member)
        return
    for chunk in _chunks(list(dict.fromkeys(run_numbers))):
        yield query.where(Number.e164.in_(chunk))


def needing_person(
    session: Session,
    account: str,
    run_numbers: Iterable[str] | RunMembers,
    now: datetime,
    ask_after: timedelta,
    at_once: frozenset[str] = frozenset(),
) -> list[Waiting]:
    """This run's numbers that need their owner now and have not been named for this initiation.

    `run_numbers`: the run's E.164s, or `RunMembers(run_id)` (the ledger's membership rows: what a
    running run uses, so a round costs the same at 100,000 numbers as at 100).
    `at_once`: numbers whose rows ask for a person (asked at the initiate, like a voice call)."""
    rows: list[Waiting] = []
    base = select(*WAITING_COLUMNS).where(
        Number.account == account,
        Number.status == NumberStatus.INITIATED.value,
        Number.owner.is_not(None),
        Number.initiated_at.is_not(None),
        Number.expires_at > now,
    )
    for query in _in_run(base, run_numbers):
        for e164, alias, owner, channel, initiated, expires in session.execute(query):
            if owner is None or initiated is None or expires is None:  # the query excludes them
                continue
            item = Waiting(
                e164, alias, owner, channel, as_utc(initiated), as_utc(expires), e164 in at_once
            )
            if item.asked_since(ask_after) <= now:
                rows.append(item)
    if not rows:
        return []
    done = _notified(session, account, [w.e164 for w in rows])
    return [w for w in rows if (w.e164, w.initiated_at) not in done]


def initiations_pending(
    session: Session, account: str, run_numbers: Iterable[str] | RunMembers
) -> bool:
    """Does this run still have numbers to initiate (a wave may wait to gather them)?"""
    base = (
        select(Number.id)
        .where(Number.account == account, Number.status.in_(WAITING_FOR_INITIATION))
        .limit(1)
    )
    return any(session.execute(query).first() is not None for query in _in_run(base, run_numbers))


def should_send(
    waiting: Sequence[Waiting],
    now: datetime,
    ask_after: timedelta,
    gather: timedelta,
    *,
    more_coming: bool,
) -> bool:
    """Send now, or let the wave gather the numbers still being initiated? At most `gather`."""
    if not waiting:
        return False
    if not more_coming:
        return True
    return min(w.asked_since(ask_after) for w in waiting) <= now - gather


def plan(waiting: Sequence[Waiting], account: str, key: bytes) -> list[OwnerMessage]:
    """One message per owner, numbers in a stable order, each with its signed link."""
    by_owner: dict[str, list[Waiting]] = defaultdict(list)
    for item in waiting:
        by_owner[item.owner].append(item)
    messages: list[OwnerMessage] = []
    for owner in sorted(by_owner):
        numbers = tuple(sorted(by_owner[owner], key=lambda w: w.e164))
        expires = max(w.expires_at for w in numbers)
        link = Link(account, owner, tuple(w.e164 for w in numbers), expires)
        messages.append(
            OwnerMessage(
                owner=owner,
                numbers=numbers,
                token=sign(key, link),
                deadline=min(w.expires_at for w in numbers),
                link_expires_at=expires,
                window_start=min(w.initiated_at for w in numbers),
            )
        )
    return messages


def _channels(numbers: Sequence[Waiting]) -> str:
    kinds = {w.channel for w in numbers}
    if kinds == {"call"}:
        return "voice call"
    if kinds == {"sms"}:
        return "SMS"
    return "SMS / voice call"


def link_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/codes/{token}"


def compose(
    message: OwnerMessage,
    base_url: str,
    *,
    reminder: bool = False,
    numbers: Sequence[Waiting] | None = None,
) -> Mail:
    """The email: the issue's sentence, then the numbers (pretty-printed, alias, channel)."""
    listed = list(numbers if numbers is not None else message.numbers)
    n = len(listed)
    plural = "number" if n == 1 else "numbers"
    deadline = message.deadline.strftime("%H:%M")
    url = link_url(base_url, message.token)
    lines = [
        *(["Reminder: these codes are still missing."] if reminder else []),
        f"Plivo has sent a verification code to {'this' if n == 1 else 'these'} {n} {plural} "
        f"({_channels(listed)}). Enter each code here before {deadline} UTC: {url}",
        "",
    ]
    for w in listed:
        how = "voice call" if w.channel == "call" else "SMS"
        alias = f"  {w.alias}" if w.alias else ""
        lines.append(f"  {pretty(w.e164)}{alias}  ({how})")
    lines += ["", "The page needs no login; this link works for these numbers only."]
    prefix = "Reminder: " if reminder else ""
    subject = f"{prefix}verification codes for {n} {plural}: enter before {deadline} UTC"
    return Mail(message.owner, subject, "\n".join(lines) + "\n")
