"""What the code page says about each number of a link, as the pipeline learns it.

Read from the ledger: the number's status, and the codes typed through this link (inbox messages
of source `page` whose external id starts with the link's id). Codes themselves are never read
back for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerid.inbox.form import pretty
from callerid.inbox.models import as_utc
from callerid.ledger.models import InboxMessage, InboxStatus, Number, NumberStatus
from callerid.people.links import Link

PAGE_SOURCE = "page"
MAX_WRONG_PER_LINK = 3  # Plivo locks a verification after 3 wrong codes as well


class PageState(StrEnum):
    WAITING = "waiting"  # type the code
    CHECKING = "checking"  # a code was typed; the pipeline has not answered yet
    WRONG = "wrong"  # the last code was refused; type it again
    LOCKED = "locked"  # too many wrong codes through this link
    VERIFIED = "verified"
    NEW_CODE = "new_code"  # expired; a new code (and a new email) is on its way
    FAILED = "failed"  # no attempts left
    GONE = "gone"  # the ledger no longer knows it for this account


LABELS = {
    PageState.WAITING: "Waiting for the code",
    PageState.CHECKING: "Checking the code…",
    PageState.WRONG: "Wrong code: check it and type it again",
    PageState.LOCKED: "Too many wrong codes on this link",
    PageState.VERIFIED: "Verified",
    PageState.NEW_CODE: "Expired: a new code is on its way (a new email brings its link)",
    PageState.FAILED: "Could not be verified (no attempts left)",
    PageState.GONE: "Not waiting for a code",
}


@dataclass(frozen=True, slots=True)
class PageRow:
    e164: str
    pretty: str
    alias: str | None
    state: PageState
    tries_left: int

    @property
    def label(self) -> str:
        text = LABELS[self.state]
        if self.state is PageState.WRONG:
            text += f" ({self.tries_left} {'try' if self.tries_left == 1 else 'tries'} left)"
        return text

    @property
    def can_type(self) -> bool:
        return self.state in (PageState.WAITING, PageState.WRONG)

    @property
    def pending(self) -> bool:
        return self.state is PageState.CHECKING


def page_prefix(link: str, e164: str) -> str:
    """The external-id prefix of the codes typed for `e164` through the link with id `link`."""
    return f"{link}:{e164}:"


def typed(session: Session, link: str, e164: str) -> list[InboxMessage]:
    """Codes typed through this link for this number, oldest first."""
    query = (
        select(InboxMessage)
        .where(
            InboxMessage.source == PAGE_SOURCE,
            InboxMessage.external_id.startswith(page_prefix(link, e164), autoescape=True),
        )
        .order_by(InboxMessage.id)
    )
    return list(session.execute(query).scalars())


def refused_count(messages: list[InboxMessage]) -> int:
    """Codes that did not verify (or may not yet): every one but a used one counts."""
    return sum(1 for m in messages if m.status != InboxStatus.USED.value)


def _state(row: Number | None, link: Link, messages: list[InboxMessage]) -> PageState:
    if row is None:
        return PageState.GONE
    status = row.status
    if status in (NumberStatus.VERIFIED.value, NumberStatus.ALREADY_VERIFIED.value):
        return PageState.VERIFIED
    if status == NumberStatus.FAILED.value:
        return PageState.FAILED
    same_window = row.expires_at is not None and as_utc(row.expires_at) <= link.expires_at
    if status in (NumberStatus.QUEUED.value, NumberStatus.EXPIRED.value) or not same_window:
        return PageState.NEW_CODE
    if status in (NumberStatus.COMPLETING.value, NumberStatus.INITIATING.value):
        return PageState.CHECKING
    if messages and messages[-1].status == InboxStatus.NEW.value:
        return PageState.CHECKING
    if refused_count(messages) >= MAX_WRONG_PER_LINK:
        return PageState.LOCKED
    if messages and messages[-1].status != InboxStatus.USED.value:
        return PageState.WRONG
    return PageState.WAITING


def page_rows(session: Session, link: Link, link_key_id: str) -> list[PageRow]:
    numbers = {
        row.e164: row
        for row in session.execute(
            select(Number).where(Number.account == link.account, Number.e164.in_(link.numbers))
        ).scalars()
    }
    rows: list[PageRow] = []
    for e164 in link.numbers:
        messages = typed(session, link_key_id, e164)
        number = numbers.get(e164)
        rows.append(
            PageRow(
                e164=e164,
                pretty=pretty(e164),
                alias=number.alias if number is not None else None,
                state=_state(number, link, messages),
                tries_left=max(0, MAX_WRONG_PER_LINK - refused_count(messages)),
            )
        )
    return rows
