"""Helpers for the inbox tests: a ledger database with tables, numbers waiting for codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from callerid.inbox.db import SessionScope, session_scope
from callerid.ledger.models import Base, InboxMessage, Number, NumberStatus

ACCOUNT = "MASANDBOXACCOUNT0001"


def make_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    Base.metadata.create_all(engine)
    return engine


def scope_for(engine: sa.Engine) -> SessionScope:
    return session_scope(sessionmaker(engine, expire_on_commit=False))


@contextmanager
def session(engine: sa.Engine) -> Iterator[Session]:
    with sessionmaker(engine, expire_on_commit=False).begin() as s:
        yield s


def add_number(
    s: Session,
    e164: str,
    *,
    status: NumberStatus = NumberStatus.INITIATED,
    verification_uuid: str | None = "uuid-1",
    initiated_at: datetime | None = None,
    account: str = ACCOUNT,
) -> Number:
    now = datetime.now(UTC)
    start = initiated_at or now - timedelta(minutes=1)
    row = Number(
        account=account,
        e164=e164,
        channel="sms",
        status=status.value,
        verification_uuid=verification_uuid,
        initiated_at=start,
        expires_at=start + timedelta(minutes=15),
        created_at=now,
        updated_at=now,
    )
    s.add(row)
    s.flush()
    return row


def all_messages(engine: sa.Engine) -> list[InboxMessage]:
    with session(engine) as s:
        return list(s.execute(sa.select(InboxMessage).order_by(InboxMessage.id)).scalars())
