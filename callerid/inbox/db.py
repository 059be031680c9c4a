"""How the inbox's long-running parts (webhook, pollers) get a database session.

A `SessionScope` is a zero-argument callable returning a context manager that yields a Session
and commits when the block ends without error. `session_scope(target)` builds one from a ledger
URL, a `Ledger` (anything with `unit_of_work()`), a SQLAlchemy `Engine`, or a `sessionmaker`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

SessionScope = Callable[[], AbstractContextManager[Session]]


def _from_sessionmaker(factory: sessionmaker[Session]) -> SessionScope:
    @contextmanager
    def scope() -> Iterator[Session]:
        with factory.begin() as session:
            yield session

    return scope


def _from_ledger(ledger: Any) -> SessionScope:
    @contextmanager
    def scope() -> Iterator[Session]:
        with ledger.unit_of_work() as uow:
            yield uow.session
            uow.commit()

    return scope


def session_scope(target: str | Engine | sessionmaker[Session] | Any) -> SessionScope:
    if isinstance(target, str):
        from callerid.ledger import open_ledger  # the ledger owns engines and migrations

        return _from_ledger(open_ledger(target))
    if isinstance(target, Engine):
        return _from_sessionmaker(sessionmaker(target, expire_on_commit=False))
    if isinstance(target, sessionmaker):
        return _from_sessionmaker(target)
    if hasattr(target, "unit_of_work"):
        return _from_ledger(target)
    raise TypeError(f"cannot get database sessions from {type(target).__name__}")
