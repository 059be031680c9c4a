"""The IMAP source: a mailbox that an SMS-to-email gateway (or a person forwarding) writes to.

The sender's number is read from the From address (`14155550123@sms.example.com`), else from the
subject (`SMS from +1 415 555 0123`); the text is the first text/plain part (else the subject).
Messages are fetched with BODY.PEEK (not marking them read), stored once per Message-ID (or
UIDVALIDITY:UID when there is none), and flagged \\Seen only after the store committed, so a crash
between the two reads them again and stores nothing twice. A part that cannot be read is left out
(an unreadable Date, or one past year 9999 in UTC, is the time the mail was read); a mail that
cannot be read at all is logged by UID, flagged \\Seen and left in the mailbox, and never keeps
the others from being stored.

Credentials come from `ImapSettings` (environment, `CALLERID_IMAP_*`) or from whatever the caller
builds an `ImapConfig` from (the Prefect task reads a Secret block); the password never appears in
a repr or a log.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from enum import StrEnum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from callerid.inbox import store
from callerid.inbox.db import SessionScope
from callerid.inbox.models import MAX_TEXT_CHARS, InboundMessage, MessageSource, as_utc
from callerid.inbox.text import normalise_number

log = logging.getLogger(__name__)
_SUBJECT_NUMBER_RE = re.compile(r"\+?\d[\d\s().\-]{6,}\d")


class TlsMode(StrEnum):
    SSL = "ssl"  # TLS from the first byte (port 993)
    STARTTLS = "starttls"  # plain connect, then STARTTLS before login (port 143)


class ImapError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.message,))


@dataclass(frozen=True)
class ImapConfig:
    host: str
    username: str
    password: str = field(repr=False)
    port: int | None = None
    tls: TlsMode = TlsMode.SSL
    mailbox: str = "INBOX"
    cafile: str | None = None  # a private CA (tests: the self-signed certificate)
    timeout_s: float = 30.0

    @property
    def resolved_port(self) -> int:
        return self.port or (993 if self.tls is TlsMode.SSL else 143)


class ImapSettings(BaseSettings):
    """`CALLERID_IMAP_HOST`, `_PORT`, `_USERNAME`, `_PASSWORD`, `_TLS`, `_MAILBOX`, `_CAFILE`."""

    model_config = SettingsConfigDict(env_prefix="CALLERID_IMAP_", extra="ignore")

    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: SecretStr | None = Field(default=None)
    tls: TlsMode = TlsMode.SSL
    mailbox: str = "INBOX"
    cafile: str | None = None

    def to_config(self) -> ImapConfig:
        given = {"HOST": self.host, "USERNAME": self.username, "PASSWORD": self.password}
        missing = [f"CALLERID_IMAP_{name}" for name, value in given.items() if not value]
        if missing or not (self.host and self.username and self.password):
            raise ImapError(f"IMAP is not configured: set {', '.join(missing)}")
        return ImapConfig(
            host=self.host,
            username=self.username,
            password=self.password.get_secret_value(),
            port=self.port,
            tls=self.tls,
            mailbox=self.mailbox,
            cafile=self.cafile,
        )


def sender_number(from_header: str, subject: str) -> str | None:
    """E.164 from the From address's local part, else the first number in the subject."""
    _, address = parseaddr(from_header)
    local = address.split("@", 1)[0]
    found = normalise_number(local) if local.strip("+").isdigit() else None
    if found:
        return found
    for match in _SUBJECT_NUMBER_RE.finditer(subject):
        if found := normalise_number(match.group()):
            return found
    return None


def _header(message: EmailMessage, name: str) -> str:
    """The header's value; as it came (unfolded) when the email package cannot parse it."""
    try:
        return str(message.get(name, "") or "")
    except Exception:  # the parser slips: `From: <` (IndexError), `From: a@[` (AttributeError)
        for key, value in message.raw_items():
            if key.lower() == name.lower():
                return " ".join(str(value).split())
        return ""


def _body_text(message: EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain",))
        return str(part.get_content()).strip() if part is not None else ""
    except Exception:  # an unknown charset, or one that cannot decode (`charset=idna`)
        return ""  # then the subject stands for the text


def to_message(raw: bytes, fallback_id: str, account: str | None) -> InboundMessage:
    """The mail as an inbound message. What cannot be read is left out (a body: the subject
    stands for it; a date: the time it was read), so the message is stored all the same."""
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    subject = _header(parsed, "Subject")
    sender = _header(parsed, "From")
    number = sender_number(sender, subject)
    text = (_body_text(parsed) or subject)[:MAX_TEXT_CHARS]
    date = _header(parsed, "Date")
    try:
        received = as_utc(parsedate_to_datetime(date)) if date else None
    except (TypeError, ValueError, OverflowError):  # unreadable, or past the last UTC year
        received = None
    message_id = _header(parsed, "Message-ID").strip()
    return InboundMessage(
        source=MessageSource.IMAP,
        external_id=(message_id or fallback_id)[:255],
        from_number=number or (parseaddr(sender)[1][:64] or None),
        to_number=None,
        text=text,
        received_at=received or datetime.now(UTC),
        account=account,
    )


def connect(config: ImapConfig) -> imaplib.IMAP4:
    context = ssl.create_default_context(cafile=config.cafile)
    try:
        client: imaplib.IMAP4
        if config.tls is TlsMode.SSL:
            client = imaplib.IMAP4_SSL(
                config.host, config.resolved_port, ssl_context=context, timeout=config.timeout_s
            )
        else:
            client = imaplib.IMAP4(config.host, config.resolved_port, timeout=config.timeout_s)
            client.starttls(ssl_context=context)
        client.login(config.username, config.password)
    except (OSError, imaplib.IMAP4.error) as exc:
        # the server's words, never the password
        said = exc.args[0] if exc.args else exc
        reason = said.decode(errors="replace") if isinstance(said, bytes) else str(exc)
        where = f"{config.host}:{config.resolved_port}"
        raise ImapError(f"IMAP login to {where} failed: {reason}") from None
    return client


def _uids(client: imaplib.IMAP4) -> list[str]:
    status, data = client.uid("SEARCH", "UNSEEN")
    if status != "OK":
        raise ImapError("IMAP search failed")
    return [u.decode() for u in data[0].split()] if data and data[0] else []


def _fetch(client: imaplib.IMAP4, uid: str) -> bytes | None:
    status, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        return None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return bytes(item[1])
    return None


def poll_mailbox(config: ImapConfig, scope: SessionScope, account: str | None) -> int:
    """Store every unseen message of the mailbox; returns how many were new to the inbox."""
    client = connect(config)
    try:
        status, _ = client.select(config.mailbox)
        if status != "OK":
            raise ImapError(f"IMAP mailbox {config.mailbox!r} cannot be opened")
        validity = client.response("UIDVALIDITY")[1]
        prefix = validity[0].decode() if validity and validity[0] else "0"
        fetched: list[tuple[str, InboundMessage]] = []
        unreadable: list[str] = []
        for uid in _uids(client):
            raw = _fetch(client, uid)
            if raw is None:
                continue  # the server did not give it this time: the next poll asks again
            try:
                fetched.append((uid, to_message(raw, f"uid:{prefix}:{uid}", account)))
            except Exception as exc:  # one mail no parse can read must not stop the others
                # the type only: an exception's words may quote the mail, and the mail a code
                log.warning(
                    "IMAP %s: message UID %s cannot be read (%s): not stored, flagged \\Seen,"
                    " left in the mailbox",
                    config.mailbox,
                    uid,
                    type(exc).__name__,
                )
                unreadable.append(uid)
        stored = 0
        with scope() as session:
            for _, message in fetched:
                stored += store.insert_message(session, message)[1]
        # only after the commit: a crash before this re-reads, harmlessly; an unreadable mail
        # is flagged too, or every poll would read it again and fail on it again
        for uid in [uid for uid, _ in fetched] + unreadable:
            client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        log.info(
            "IMAP %s: %d fetched, %d new, %d unreadable",
            config.mailbox,
            len(fetched),
            stored,
            len(unreadable),
        )
        return stored
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            client.logout()
