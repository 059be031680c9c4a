"""The unit of work: one session, its repositories, and an explicit commit.

    with ledger.unit_of_work() as uow:
        uow.numbers.claim(...)
        uow.commit()          # nothing is saved without it; leaving the block rolls back the rest

Callers commit once per chunk of work. `uow.session` is the raw SQLAlchemy session for code that
queries tables the repositories do not cover (the inbox store); it shares the transaction.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from callerid.ledger.errors import ConcurrentUpdateError
from callerid.ledger.events import EventRepository
from callerid.ledger.numbers import NumberRepository
from callerid.ledger.runs import RunRepository


class UnitOfWork:
    session: Session
    numbers: NumberRepository
    runs: RunRepository
    events: EventRepository

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.numbers = NumberRepository(self.session)
        self.runs = RunRepository(self.session)
        self.events = EventRepository(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed, and (unlike rollback()) leaves loaded
        # rows readable, detached, for the caller to copy out.
        self.session.close()

    def commit(self) -> None:
        try:
            self.session.commit()
        except StaleDataError as exc:
            self.session.rollback()
            raise ConcurrentUpdateError(str(exc).splitlines()[0]) from None

    def rollback(self) -> None:
        self.session.rollback()
