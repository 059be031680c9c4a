"""Reading the append-only event table (events are written only by the number repository)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callerid.ledger.models import Event, Number


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def history(self, account: str, e164: str) -> list[Event]:
        """Every event of one number, oldest first."""
        query = (
            select(Event)
            .join(Number, Number.id == Event.number_id)
            .where(Number.account == account, Number.e164 == e164)
            .order_by(Event.id)
        )
        return list(self.session.execute(query).scalars())

    def for_run(self, run_id: str) -> list[Event]:
        query = select(Event).where(Event.run_id == run_id).order_by(Event.id)
        return list(self.session.execute(query).scalars())

    def count(self, *, run_id: str | None = None) -> int:
        query = select(func.count()).select_from(Event)
        if run_id is not None:
            query = query.where(Event.run_id == run_id)
        return int(self.session.execute(query).scalar_one())

    def counts_for_run(self, run_id: str) -> dict[str, int]:
        """A run's transitions counted by target status (e.g. how many initiations it sent)."""
        query = (
            select(Event.to_status, func.count())
            .where(Event.run_id == run_id)
            .group_by(Event.to_status)
        )
        return {str(status): int(n) for status, n in self.session.execute(query)}
