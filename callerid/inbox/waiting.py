"""What a person is being asked for: which numbers still wait for a code, and until when."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callerid.inbox.models import as_utc
from callerid.ledger.models import Number, NumberStatus

_WAITING = (NumberStatus.INITIATED.value, NumberStatus.COMPLETING.value)


def window_end(session: Session, account: str, numbers: Iterable[str]) -> datetime | None:
    """The latest `expires_at` among `numbers` still waiting for a code (None: none waits)."""
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return None
    query = select(Number.expires_at).where(
        Number.account == account, Number.e164.in_(wanted), Number.status.in_(_WAITING)
    )
    ends = [as_utc(end) for end in session.execute(query).scalars() if end is not None]
    return max(ends) if ends else None


def still_waiting(
    session: Session, account: str, numbers: Iterable[str], now: datetime
) -> list[str]:
    """`numbers` (in order) whose verification is live and not yet completed."""
    wanted = list(dict.fromkeys(numbers))
    if not wanted:
        return []
    query = select(Number.e164, Number.expires_at).where(
        Number.account == account, Number.e164.in_(wanted), Number.status.in_(_WAITING)
    )
    live = {e164 for e164, end in session.execute(query) if end is None or as_utc(end) > now}
    return [n for n in wanted if n in live]
