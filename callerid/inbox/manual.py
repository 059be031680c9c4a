"""Codes typed by a person (the Prefect UI form, `callerid otp submit`): into the same inbox table.

A typed code is stored as a message from the number itself whose text is the code, so the one
matcher settles it like any SMS: it matches while the number's verification is live, and is kept
as unmatched for a person otherwise.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from callerid.inbox import store
from callerid.inbox.models import (
    InboundMessage,
    InvalidCodeError,
    InvalidNumberError,
    MessageSource,
)
from callerid.inbox.text import is_code, normalise_number


def submit_code(
    session: Session,
    account: str | None,
    number: str,
    code: str,
    source: MessageSource = MessageSource.CLI,
    external_id: str | None = None,
    now: datetime | None = None,
) -> tuple[int, bool]:
    """Record `code` for `number`; returns (inbox message id, created)."""
    e164 = normalise_number(number)
    if e164 is None:
        raise InvalidNumberError("not a valid phone number (use E.164, e.g. +14155550123)")
    code = code.strip()
    if not is_code(code):
        raise InvalidCodeError("a code is 4 to 8 digits")
    message = InboundMessage(
        source=source,
        external_id=external_id or f"{source.value}:{uuid.uuid4()}",
        from_number=e164,
        to_number=None,
        text=code,
        received_at=now or datetime.now(UTC),
        account=account,
    )
    return store.insert_message(session, message, now)
