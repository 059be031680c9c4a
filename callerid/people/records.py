"""What was sent to whom and when: notifications and the numbers each one named, in the ledger.

Functions take a Session and never commit (the caller's unit of work does).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callerid.inbox.models import as_utc
from callerid.ledger.models import Notification, NotifiedNumber, Number, NumberStatus, RunNumber
from callerid.people.links import Link, link_id, sign
from callerid.people.waves import WAITING_COLUMNS, OwnerMessage, RunMembers, Waiting

log = logging.getLogger(__name__)

SENT, FAILED = "sent", "failed"
WAVE, REMINDER = "wave", "reminder"


def next_wave(session: Session, account: str, run_id: str | None) -> int:
    query = select(func.max(Notification.wave)).where(
        Notification.account == account, Notification.run_id == run_id
    )
    return int(session.execute(query).scalar_one() or 0) + 1


def record_message(
    session: Session,
    account: str,
    run_id: str | None,
    wave: int,
    message: OwnerMessage,
    *,
    kind: str,
    error: str | None,
    now: datetime,
    numbers: Sequence[Waiting] | None = None,
) -> Notification:
    named = list(numbers if numbers is not None else message.numbers)
    row = Notification(
        account=account,
        run_id=run_id,
        wave=wave,
        kind=kind,
        owner=message.owner,
        numbers=[w.e164 for w in named],
        link_id=link_id(message.token),
        deadline=message.deadline,
        link_expires_at=message.link_expires_at,
        remind_at=message.remind_at if kind == WAVE else None,
        status=FAILED if error else SENT,
        error=error,
        created_at=now,
        sent_at=None if error else now,
    )
    session.add(row)
    session.flush()
    if kind == WAVE:
        session.add_all(
            NotifiedNumber(
                notification_id=row.id,
                account=account,
                e164=w.e164,
                initiated_at=w.initiated_at,
            )
            for w in named
        )
    return row


@dataclass(frozen=True, slots=True)
class DueReminder:
    notification_id: int
    wave: int
    message: OwnerMessage
    missing: tuple[Waiting, ...]


def _still_waiting(session: Session, account: str, row: Notification) -> list[Waiting]:
    """The numbers `row` named whose code is still missing: live, and still the initiation the
    message was about (a number initiated again has a new code and its own wave)."""
    query = (
        select(*WAITING_COLUMNS, NotifiedNumber.initiated_at)
        .join(
            NotifiedNumber,
            (NotifiedNumber.account == Number.account) & (NotifiedNumber.e164 == Number.e164),
        )
        .where(
            NotifiedNumber.notification_id == row.id,
            Number.account == account,
            Number.status == NumberStatus.INITIATED.value,
        )
    )
    found: list[Waiting] = []
    for e164, alias, owner, channel, initiated, expires, notified in session.execute(query):
        if initiated is None or expires is None or notified is None:
            continue
        if as_utc(initiated) != as_utc(notified):
            continue
        found.append(
            Waiting(e164, alias, owner or row.owner, channel, as_utc(initiated), as_utc(expires))
        )
    return sorted(found, key=lambda w: w.e164)


def _names_run_number(
    session: Session,
    account: str,
    numbers: Sequence[str],
    run_numbers: Collection[str] | RunMembers,
) -> bool:
    """Does a message naming `numbers` belong to this run (one of them is the run's)?"""
    if not isinstance(run_numbers, RunMembers):
        return any(e164 in run_numbers for e164 in numbers)
    member = select(Number.id).join(
        RunNumber, (RunNumber.number_id == Number.id) & (RunNumber.run_id == run_numbers.run_id)
    )
    query = member.where(Number.account == account, Number.e164.in_(list(numbers))).limit(1)
    return session.execute(query).first() is not None


def due_reminders(
    session: Session,
    account: str,
    run_numbers: Collection[str] | RunMembers,
    now: datetime,
    key: bytes,
) -> list[DueReminder]:
    """Sent wave messages naming this run's numbers, past their reminder time, before their
    deadline, not yet reminded (by any run), whose numbers are still waiting for a code (those,
    and only those, are listed again).

    Everything comes from the ledger, so a run started again after a crash reminds the owners
    its predecessor told (once), and never one whose window is over. The link is signed again
    from what the ledger kept (signing is deterministic; the token itself, a bearer credential,
    is never stored); if the key changed since (CALLERID_LINK_SECRET), it cannot be, and the
    reminder is skipped with a log line.
    """
    reminded = select(Notification.link_id).where(
        Notification.account == account, Notification.kind == REMINDER
    )
    query = select(Notification).where(
        Notification.account == account,
        Notification.kind == WAVE,
        Notification.status == SENT,
        Notification.remind_at <= now,
        Notification.deadline > now,
        Notification.link_id.not_in(reminded),
    )
    due: list[DueReminder] = []
    for row in session.execute(query).scalars():
        if not _names_run_number(session, account, row.numbers, run_numbers):
            continue  # another run's message
        missing = tuple(_still_waiting(session, account, row))
        if not missing:
            continue
        expires = as_utc(row.link_expires_at)
        token = sign(key, Link(account, row.owner, tuple(row.numbers), expires))
        if link_id(token) != row.link_id:
            log.warning(
                "wave %d: the link key changed since; no reminder to %s", row.wave, row.owner
            )
            continue
        message = OwnerMessage(
            owner=row.owner,
            numbers=missing,
            token=token,
            deadline=as_utc(row.deadline),
            link_expires_at=expires,
            window_start=min(w.initiated_at for w in missing),
        )
        due.append(DueReminder(row.id, row.wave, message, missing))
    return due


def failed_notices(session: Session, account: str, run_id: str | None) -> dict[str, str]:
    """E.164 -> why a message naming it could not be sent (for the run's reports)."""
    query = select(Notification).where(
        Notification.account == account,
        Notification.run_id == run_id,
        Notification.status == FAILED,
    )
    found: dict[str, str] = {}
    for row in session.execute(query).scalars():
        for e164 in row.numbers:
            found.setdefault(e164, f"email to {row.owner} not sent: {row.error}")
    return found


@dataclass(frozen=True, slots=True)
class NoticeCounts:
    waves: int = 0
    sent: int = 0
    failed: int = 0
    reminders: int = 0
    owners: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "waves": self.waves,
            "emails_sent": self.sent,
            "emails_failed": self.failed,
            "reminders": self.reminders,
            "owners_emailed": self.owners,
        }


def notice_counts(session: Session, account: str, run_id: str | None) -> NoticeCounts:
    rows = session.execute(
        select(Notification.wave, Notification.kind, Notification.status, Notification.owner).where(
            Notification.account == account, Notification.run_id == run_id
        )
    ).all()
    return NoticeCounts(
        waves=len({w for w, k, *_ in rows if k == WAVE}),
        sent=sum(1 for _, k, s, _ in rows if k == WAVE and s == SENT),
        failed=sum(1 for _, _, s, _ in rows if s == FAILED),
        reminders=sum(1 for _, k, s, _ in rows if k == REMINDER and s == SENT),
        owners=len({o for _, k, s, o in rows if s == SENT}),
    )
