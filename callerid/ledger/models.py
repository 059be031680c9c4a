"""The ledger's tables (SQLAlchemy 2.0 declarative). Schema changes go through Alembic.

States of a number (design.md):

    queued --initiate--> initiated --right OTP--> verified
      |                     | wrong OTP: stays initiated, wrong_otps += 1 (locked after 3)
      |                     +--15 min, no OTP / locked--> expired --attempts left--> queued
      |                     |                                  +--none left--> failed
      |                     +--permanent API error--> failed
      +--listed by the account already--> already_verified

`initiating` and `completing` are written before the API call; a crash leaves them behind and
recovery resolves them. The allowed moves are in `callerid.ledger.states`; only the repository
changes `status` (and it writes an `Event` for every change).

Timestamps are stored as UTC and always come back timezone-aware, on SQLite too (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class NumberStatus(StrEnum):
    QUEUED = "queued"
    INITIATING = "initiating"
    INITIATED = "initiated"
    COMPLETING = "completing"
    VERIFIED = "verified"
    ALREADY_VERIFIED = "already_verified"
    EXPIRED = "expired"
    FAILED = "failed"


FINAL_STATUSES = frozenset(
    {NumberStatus.VERIFIED, NumberStatus.ALREADY_VERIFIED, NumberStatus.FAILED}
)
# A verification may be under way: an OTP was, or may have been, sent for the current attempt.
LIVE_STATUSES = frozenset(
    {NumberStatus.INITIATING, NumberStatus.INITIATED, NumberStatus.COMPLETING}
)


class InboxStatus(StrEnum):
    NEW = "new"
    USED = "used"
    UNMATCHED = "unmatched"
    AMBIGUOUS = "ambiguous"
    STALE = "stale"


class UTCDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that stores UTC and returns aware UTC values on every database.

    SQLite keeps no offset: without this, values would come back naive, and an aware non-UTC value
    would be stored as its local wall time and compare wrongly. Naive values are taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    input_path: Mapped[str | None] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Number(Base):
    __tablename__ = "numbers"
    __table_args__ = (
        UniqueConstraint("account", "e164", name="uq_numbers_account_e164"),
        # Claims filter on (account, status) and take the oldest ids first.
        Index("ix_numbers_claim", "account", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    e164: Mapped[str] = mapped_column(String(20))
    alias: Mapped[str | None] = mapped_column(String(64))
    subaccount: Mapped[str | None] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(2))
    channel: Mapped[str] = mapped_column(String(8), default="sms")
    status: Mapped[str] = mapped_column(String(20), default=NumberStatus.QUEUED.value)
    verification_uuid: Mapped[str | None] = mapped_column(String(64))
    initiated_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    wrong_otps: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    # The person holding the phone (an email address): told when the code needs typing.
    owner: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Optimistic locking: every UPDATE checks and bumps it, so two processes that loaded the same
    # row cannot both move it (the second one's commit fails instead of overwriting).
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012

    def __repr__(self) -> str:
        return f"<Number {self.account}/{self.e164} {self.status} attempts={self.attempts}>"


class Event(Base):
    """Append-only: one row per state transition, written in the transition's transaction."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(36))
    at: Mapped[datetime]

    def __repr__(self) -> str:
        move = f"{self.from_status} -> {self.to_status}"
        return f"<Event number={self.number_id} {move} {self.reason!r}>"


class InboxMessage(Base):
    """Every inbound message from every source; `code` is an OTP and is never logged."""

    __tablename__ = "inbox_messages"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_inbox_source_external_id"),
        Index("ix_inbox_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # webhook | file | imap | ui | cli
    external_id: Mapped[str] = mapped_column(String(255))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime]
    matched_e164: Mapped[str | None] = mapped_column(String(20))
    code: Mapped[str | None] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(12), default=InboxStatus.NEW.value)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Notification(Base):
    """One message to one owner (a wave's first message or its reminder): what, to whom, when.

    `numbers` are the E.164s it named; `status` is `sent` or `failed` (with `error`: never a
    password). A failed message is also visible per number through `NotifiedNumber`.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_run", "run_id", "wave"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(36))
    wave: Mapped[int]
    kind: Mapped[str] = mapped_column(String(12))  # wave | reminder
    owner: Mapped[str] = mapped_column(String(254))
    numbers: Mapped[list[str]] = mapped_column(JSON)
    link_id: Mapped[str] = mapped_column(String(32))
    deadline: Mapped[datetime]  # the earliest window end of its numbers (said in the message)
    link_expires_at: Mapped[datetime]  # the latest window end: the link's own expiry
    remind_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(12))  # sent | failed
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class NotifiedNumber(Base):
    """A number's place in a wave: which initiation it was for, and the message that named it."""

    __tablename__ = "notified_numbers"
    __table_args__ = (Index("ix_notified_numbers_number", "account", "e164"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"), index=True)
    account: Mapped[str] = mapped_column(String(64))
    e164: Mapped[str] = mapped_column(String(20))
    initiated_at: Mapped[datetime | None]


class LedgerSecret(Base):
    """Secrets the ledger generates once and keeps (the code page's link-signing key)."""

    __tablename__ = "ledger_secrets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class RunNumber(Base):
    """A number registered by a run (its counts in `RunCount` are kept by triggers)."""

    __tablename__ = "run_numbers"
    __table_args__ = (Index("ix_run_numbers_number", "number_id"),)

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("numbers.id"), primary_key=True)


class RunCount(Base):
    """Signed deltas of a run's count by status; a run's count is their sum (`run_counts.py`)."""

    __tablename__ = "run_counts"
    __table_args__ = (Index("ix_run_counts_run", "run_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20))
    n: Mapped[int]


@event.listens_for(Base.metadata, "after_create")
def _count_triggers(target: object, connection: Connection, **kw: Any) -> None:
    """`create_all` (tests) gets the counting triggers too; migrations install them in 0003."""
    from callerid.ledger.run_counts import install_triggers

    if kw.get("tables") is None or RunCount.__table__ in kw["tables"]:
        install_triggers(connection)


class RateGrant(Base):
    """One request granted to an account by the budget shared through PostgreSQL
    (`rate_budget.py`); `at` is the database's clock in epoch seconds. Pruned as it goes."""

    __tablename__ = "rate_grants"
    __table_args__ = (Index("ix_rate_grants_account_at", "account", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
