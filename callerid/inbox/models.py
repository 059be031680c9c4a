"""Values that cross the inbox's boundaries: an inbound message, a matched code, and the errors.

Every source (webhook, file drop, IMAP, a person at the UI or CLI) turns what it received into an
`InboundMessage` (which replaces, with U+FFFD, the characters no database stores: NUL, lone
surrogates); the store writes it once per (source, external_id); the matcher turns `new`
messages into `MatchedCode`s for the completer. Texts and codes carry OTPs: they are kept out of
every repr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

MAX_TEXT_CHARS = 1600  # ten concatenated SMS parts; longer is not an SMS
MAX_EXTERNAL_ID_CHARS = 255  # the column's width
MAX_NUMBER_CHARS = 64
# NUL (PostgreSQL refuses it in text: psycopg's DataError) and lone surrogates (no UTF-8 encodes
# them: every driver's UnicodeEncodeError). Each becomes U+FFFD, one character for one, so no
# length limit moves and no digits are joined into a code that was not there.
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


class MessageSource(StrEnum):
    WEBHOOK = "webhook"
    FILE = "file"
    IMAP = "imap"
    UI = "ui"
    CLI = "cli"
    PAGE = "page"  # the owners' code page (callerid.people)


class InboxError(Exception):
    """Base of the inbox's errors: plain values only, so they pickle (Prefect stores them)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))


class MessageNotFoundError(InboxError):
    pass


class InvalidCodeError(InboxError):
    pass


class InvalidNumberError(InboxError):
    pass


class AssignmentError(InboxError):
    """A person's assignment cannot be applied (no code to be found, message already used...)."""


def storable(value: str) -> str:
    """`value` with every character no database can store replaced by U+FFFD."""
    return _UNSTORABLE_RE.sub("\ufffd", value)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back naive; everything here is UTC, so say so."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class InboundMessage:
    """One message as a source received it, before matching."""

    source: MessageSource
    external_id: str
    from_number: str | None
    to_number: str | None
    text: str = field(repr=False)
    received_at: datetime
    account: str | None = None

    def __post_init__(self) -> None:
        # every source's message is stored as it comes: nothing in it may make the insert fail
        for name in ("external_id", "from_number", "to_number", "text"):
            value = getattr(self, name)
            if value is not None and _UNSTORABLE_RE.search(value):
                object.__setattr__(self, name, storable(value))
        if not self.external_id or len(self.external_id) > MAX_EXTERNAL_ID_CHARS:
            raise ValueError(f"external_id must be 1-{MAX_EXTERNAL_ID_CHARS} characters")
        if len(self.text) > MAX_TEXT_CHARS:
            raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
        for number in (self.from_number, self.to_number):
            if number is not None and len(number) > MAX_NUMBER_CHARS:
                raise ValueError(f"phone number longer than {MAX_NUMBER_CHARS} characters")
        object.__setattr__(self, "received_at", as_utc(self.received_at))


@dataclass(frozen=True)
class MatchedCode:
    """An OTP ready to submit: complete `verification_uuid` with `code`, then mark `message_id`."""

    e164: str
    verification_uuid: str
    code: str = field(repr=False)
    message_id: int


@dataclass(frozen=True)
class StoredMessage:
    """A row of the inbox table as the CLI and the flows see it (the code is never in repr)."""

    id: int
    account: str | None
    source: str
    external_id: str
    from_number: str | None
    to_number: str | None
    text: str = field(repr=False)
    received_at: datetime
    matched_e164: str | None
    code: str | None = field(repr=False)
    status: str
    note: str | None
