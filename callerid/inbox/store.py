"""The inbox table: every source writes here once per (source, external_id); the matcher reads.

Functions take a SQLAlchemy `Session` and never commit: the caller's unit of work decides when.
Insert-once uses the database's own `ON CONFLICT DO NOTHING` (SQLite and PostgreSQL), so two
receivers storing the same MessageUUID at the same moment still leave one row.

Codes do not outlive their use (issue 13): once a message is used or refused, settled stale,
or assigned to a number that is not waiting, or the window of its number has ended, its text
keeps the code masked (`****`) and its `code` is cleared (`retire`, `retire_ended`; the matcher
and `record_completions` call `retire` as they settle). What a person reads later still says
what came from whom and when.
A retired message that named a number keeps, in `code`, only a short fingerprint of (number,
code), `#` and 7 hex digits: never the code, but enough for the matcher to recognise a late copy
of an earlier verification's SMS (`is_fingerprint_of`). The code it stands for no longer works.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from callerid.inbox.models import (
    AssignmentError,
    InboundMessage,
    InvalidCodeError,
    InvalidNumberError,
    MessageNotFoundError,
    StoredMessage,
    as_utc,
)
from callerid.inbox.text import is_code, normalise_number, read_text
from callerid.ledger.models import FINAL_STATUSES, InboxMessage, InboxStatus, Number
from callerid.masking import mask_codes_in_text

# No OTP lives longer than this (Plivo's window is 15 minutes): a code older is dead whatever
# became of its number.
CODE_LIFETIME = timedelta(minutes=20)
_CHUNK = 500  # IN (...) lists stay well under every database's parameter limit


def _values(message: InboundMessage, now: datetime) -> dict[str, object]:
    return {
        "account": message.account,
        "source": message.source.value,
        "external_id": message.external_id,
        "from_number": message.from_number,
        "to_number": message.to_number,
        "text": message.text,
        "received_at": message.received_at,
        "status": InboxStatus.NEW.value,
        "created_at": now,
    }


def _find_id(session: Session, source: str, external_id: str) -> int | None:
    query = select(InboxMessage.id).where(
        InboxMessage.source == source, InboxMessage.external_id == external_id
    )
    return session.execute(query).scalar_one_or_none()


@functools.cache
def _insert_once(dialect: str) -> Insert:
    """`INSERT ... ON CONFLICT (source, external_id) DO NOTHING RETURNING id`, built once per
    dialect: a Core statement executed with a fresh row of values costs a fraction of an ORM
    insert (no per-call construction, cache key or ORM bulk path; measured ~4x less CPU)."""
    table = cast(Table, InboxMessage.__table__)
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id)
    )


def insert_message(
    session: Session, message: InboundMessage, now: datetime | None = None
) -> tuple[int, bool]:
    """Store `message` unless its (source, external_id) is already there: (row id, created)."""
    values = _values(message, now or datetime.now(UTC))
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        session.flush()  # the Core insert below bypasses autoflush: keep the session's order
        new_id = session.connection().execute(_insert_once(dialect), values).scalar_one_or_none()
        if new_id is not None:
            return int(new_id), True
    else:  # other databases: look first (a race here ends in the unique constraint's error)
        if _find_id(session, message.source.value, message.external_id) is None:
            row = InboxMessage(**values)
            session.add(row)
            session.flush()
            return row.id, True
    existing = _find_id(session, message.source.value, message.external_id)
    if existing is None:  # pragma: no cover - the conflict we just hit cannot vanish
        raise RuntimeError("inbox insert conflicted with a row that is not there")
    return existing, False


def to_stored(row: InboxMessage) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        account=row.account,
        source=row.source,
        external_id=row.external_id,
        from_number=row.from_number,
        to_number=row.to_number,
        text=row.text,
        received_at=as_utc(row.received_at),
        matched_e164=row.matched_e164,
        code=row.code,
        status=row.status,
        note=row.note,
    )


def _account_filter(account: str | None) -> list[ColumnElement[bool]]:
    if account is None:
        return []
    # Messages from a source that cannot tell the account (a shared mailbox) belong to everyone.
    return [(InboxMessage.account == account) | InboxMessage.account.is_(None)]


def list_messages(
    session: Session,
    status: InboxStatus | str | None = None,
    account: str | None = None,
    limit: int = 100,
) -> list[StoredMessage]:
    """Newest first."""
    query = select(InboxMessage).where(*_account_filter(account))
    if status is not None:
        query = query.where(InboxMessage.status == InboxStatus(status).value)
    query = query.order_by(InboxMessage.received_at.desc(), InboxMessage.id.desc()).limit(limit)
    return [to_stored(row) for row in session.execute(query).scalars()]


def new_rows(session: Session, account: str | None) -> Sequence[InboxMessage]:
    """Messages the matcher has not settled yet, oldest first."""
    query = (
        select(InboxMessage)
        .where(InboxMessage.status == InboxStatus.NEW.value, *_account_filter(account))
        .order_by(InboxMessage.received_at, InboxMessage.id)
    )
    return session.execute(query).scalars().all()


def get_row(session: Session, message_id: int) -> InboxMessage:
    row = session.get(InboxMessage, message_id)
    if row is None:
        raise MessageNotFoundError(f"no inbox message with id {message_id}")
    return row


def load_rows(session: Session, message_ids: Sequence[int]) -> dict[int, InboxMessage]:
    """The rows of `message_ids` in one query per 500: while the caller holds the returned dict
    (a session keeps unchanged rows only weakly), `get_row`, `mark_used` and `mark_rejected` find
    them without a query of their own, and so without the autoflush each query would bring."""
    found: dict[int, InboxMessage] = {}
    wanted = list(dict.fromkeys(message_ids))
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        query = select(InboxMessage).where(InboxMessage.id.in_(chunk))
        found.update((row.id, row) for row in session.execute(query).scalars())
    return found


def get_message(session: Session, message_id: int) -> StoredMessage:
    return to_stored(get_row(session, message_id))


def set_status(
    session: Session,
    message_id: int,
    status: InboxStatus,
    *,
    matched_e164: str | None = None,
    code: str | None = None,
    note: str | None = None,
) -> None:
    row = get_row(session, message_id)
    row.status = status.value
    if matched_e164 is not None:
        row.matched_e164 = matched_e164
    if code is not None:
        row.code = code
    if note is not None:
        row.note = note


_FINGERPRINT = "#"


def fingerprint(e164: str, code: str) -> str:
    """What a retired message keeps of its code: `#` + 7 hex digits of sha256(number:code)."""
    return _FINGERPRINT + hashlib.sha256(f"{e164}:{code}".encode()).hexdigest()[:7]


def is_fingerprint_of(stored: str | None, e164: str, code: str) -> bool:
    """`stored` (a message's `code` column) is `code` itself or the fingerprint of it."""
    return stored is not None and stored in (code, fingerprint(e164, code))


# Separators a code may be written with ("482 193", "482-193", "4.8.2.1.9.3").
_CODE_SEPARATORS = r"[\s.\-]{0,3}"


def _mask_code(text: str, code: str | None) -> str:
    """`text` with every occurrence of the known `code` masked, its digits written together or
    apart (a code a person assigned from "Your code: 482 193"); the standalone 4-8 digit groups
    are masked after this by `mask_codes_in_text`."""
    if not code or not code.isdigit():
        return text
    pattern = r"(?<!\d)" + _CODE_SEPARATORS.join(code) + r"(?!\d)"
    return re.sub(pattern, "****", text)


def retire(row: InboxMessage) -> None:
    """Forget the code of `row`: masked in the text (the known code also when written with
    separators); `code` cleared, or kept as a fingerprint when the message is settled and names
    its number. Call after setting the status."""
    known = row.code if row.code and not row.code.startswith(_FINGERPRINT) else None
    masked = mask_codes_in_text(_mask_code(row.text or "", known))
    if masked != row.text:
        row.text = masked
    if known:
        # A message still `new` (too old to hold a live code) must not hand a fingerprint to
        # the matcher as if it were a code: cleared.
        e164 = row.matched_e164 if row.status != InboxStatus.NEW.value else None
        row.code = fingerprint(e164, known) if e164 else None


def retire_ended(session: Session, now: datetime, account: str | None = None) -> int:
    """Retire the codes whose use is over: messages no longer `new` whose number is final or
    past its window (or that name no number), and any message older than `CODE_LIFETIME`.
    Returns how many rows changed."""
    final = [s.value for s in FINAL_STATUSES]
    number = (
        select(Number.id)
        .where(
            Number.e164 == InboxMessage.matched_e164,
            or_(InboxMessage.account.is_(None), Number.account == InboxMessage.account),
            or_(Number.status.in_(final), Number.expires_at < now),
        )
        .exists()
    )
    settled = InboxMessage.status != InboxStatus.NEW.value
    query = select(InboxMessage).where(
        *_account_filter(account),
        or_(
            InboxMessage.code.is_not(None) & InboxMessage.code.not_like(f"{_FINGERPRINT}%"),
            InboxMessage.text.regexp_match(r"\d{4}"),
        ),
        or_(
            InboxMessage.received_at < now - CODE_LIFETIME,
            settled & (InboxMessage.matched_e164.is_(None) | number),
        ),
    )
    changed = 0
    for row in session.execute(query).scalars():
        before = (row.text, row.code)
        retire(row)
        changed += (row.text, row.code) != before
    return changed


def mark_used(
    session: Session,
    message_id: int,
    e164: str | None = None,
    code: str | None = None,
    note: str = "code accepted",
) -> None:
    """The completer submitted this message's code (for `e164`) and Plivo accepted it (or the
    message is a copy of a code that was): the code has served, and is forgotten. Pass `e164`
    and `code` so that the message keeps the fingerprint."""
    set_status(session, message_id, InboxStatus.USED, matched_e164=e164, code=code, note=note)
    retire(get_row(session, message_id))  # found in the session: no second query


def mark_rejected(
    session: Session,
    message_id: int,
    reason: str,
    e164: str | None = None,
    code: str | None = None,
) -> None:
    """Plivo refused the code (wrong, expired...): keep the message for a person, with why;
    the refused code itself is forgotten."""
    set_status(
        session,
        message_id,
        InboxStatus.UNMATCHED,
        matched_e164=e164,
        code=code,
        note=f"code refused: {reason}",
    )
    retire(get_row(session, message_id))


def assign(
    session: Session, message_id: int, number: str, code: str | None = None
) -> StoredMessage:
    """A person settles a message: it belongs to `number`, with `code` or the one in its text.

    The message goes back to `new` with the number and code fixed; the next match pass hands it
    to the completer if that number is still waiting.
    """
    e164 = normalise_number(number)
    if e164 is None:
        raise InvalidNumberError("not a valid phone number (use E.164, e.g. +14155550123)")
    row = get_row(session, message_id)
    if row.status == InboxStatus.USED.value:
        raise AssignmentError(f"message {message_id} was already used")
    if code is None:
        reading = read_text(row.text)
        if reading.code is None:
            found = "no code" if not reading.codes else f"{len(reading.codes)} candidate codes"
            raise AssignmentError(f"message {message_id} has {found} in its text: pass --code")
        code = reading.code
    elif not is_code(code):
        raise InvalidCodeError("a code is 4 to 8 digits")
    row.matched_e164, row.code = e164, code
    row.status = InboxStatus.NEW.value
    row.note = "assigned by a person"
    return to_stored(row)
