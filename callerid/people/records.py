"""What was sent to whom and when: notifications and the numbers each one named, in the ledger.

Functions take a Session and never commit (the caller's unit of work does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callerid.ledger.models import Notification, NotifiedNumber, Number, NumberStatus
from callerid.people.links import link_id
from callerid.people.waves import OwnerMessage, Waiting

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


def due_reminders(
    session: Session,
    account: str,
    run_id: str | None,
    now: datetime,
    rebuild: Mapping[int, OwnerMessage],
) -> list[DueReminder]:
    """Sent wave messages past their reminder time, before their deadline, not yet reminded,
    whose numbers are still waiting for a code (those, and only those, are listed again).

    `rebuild` maps a notification id to the message the lane sent (it holds the link).
    """
    reminded = select(Notification.link_id).where(
        Notification.run_id == run_id, Notification.kind == REMINDER
    )
    query = select(Notification).where(
        Notification.account == account,
        Notification.run_id == run_id,
        Notification.kind == WAVE,
        Notification.status == SENT,
        Notification.remind_at <= now,
        Notification.deadline > now,
        Notification.link_id.not_in(reminded),
    )
    due: list[DueReminder] = []
    for row in session.execute(query).scalars():
        message = rebuild.get(row.id)
        if message is None:
            continue
        live = set(
            session.execute(
                select(Number.e164).where(
                    Number.account == account,
                    Number.e164.in_(row.numbers),
                    Number.status == NumberStatus.INITIATED.value,
                )
            ).scalars()
        )
        missing = tuple(w for w in message.numbers if w.e164 in live)
        if missing:
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
        waves=len({w for w, *_ in rows}),
        sent=sum(1 for _, k, s, _ in rows if k == WAVE and s == SENT),
        failed=sum(1 for _, _, s, _ in rows if s == FAILED),
        reminders=sum(1 for _, k, s, _ in rows if k == REMINDER and s == SENT),
        owners=len({o for _, k, s, o in rows if s == SENT}),
    )
