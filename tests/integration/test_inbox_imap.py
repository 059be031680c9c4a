"""The IMAP source against a real dovecot over TLS (IMAPS and STARTTLS)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from callerid.inbox import imap as imap_module
from callerid.inbox.imap import ImapConfig, ImapError, ImapSettings, TlsMode, poll_mailbox
from callerid.inbox.models import InboundMessage, as_utc
from tests.imap_server import PASSWORD, USER, ImapServer, dovecot
from tests.inbox_support import ACCOUNT, all_messages, make_engine, scope_for


@pytest.fixture(scope="module")
def imap() -> Iterator[ImapServer]:
    with dovecot() as server:
        yield server


@pytest.fixture
def mailbox(imap: ImapServer) -> str:
    name = f"sms-{uuid.uuid4().hex[:8]}"
    imap.create(name)
    return name


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


def sms_email(sender: str, body: str, subject: str = "SMS", message_id: bool = True) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "otp-inbox@example.com"
    message["Subject"] = subject
    message["Date"] = "Fri, 27 Nov 2026 03:00:00 +0000"
    if message_id:
        message["Message-ID"] = f"<{uuid.uuid4()}@sms.example.com>"
    message.set_content(body)
    return bytes(message)


def config(imap: ImapServer, mailbox: str, tls: TlsMode = TlsMode.SSL, **extra: str) -> ImapConfig:
    port = imap.imaps_port if tls is TlsMode.SSL else imap.imap_port
    values: dict[str, object] = {
        "host": imap.host,
        "username": USER,
        "password": PASSWORD,
        "port": port,
        "tls": tls,
        "mailbox": mailbox,
        "cafile": imap.cafile,
        **extra,
    }
    return ImapConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("tls", [TlsMode.SSL, TlsMode.STARTTLS])
def test_poll_stores_each_message_once(
    imap: ImapServer, mailbox: str, engine: sa.Engine, tls: TlsMode
) -> None:
    imap.deliver(sms_email("14155550123@sms.example.com", "Your code is 4821"), mailbox)
    imap.deliver(
        sms_email("Gateway <noreply@gw.example.com>", "Code 7777", "SMS from +1 415-555-0124"),
        mailbox,
    )
    imap.deliver(sms_email("+14155550125@sms.example.com", "9999", message_id=False), mailbox)
    scope = scope_for(engine)
    assert poll_mailbox(config(imap, mailbox, tls), scope, ACCOUNT) == 3
    rows = all_messages(engine)
    got = sorted((r.from_number, r.text, r.source, r.account) for r in rows)
    assert got == [
        ("+14155550123", "Your code is 4821", "imap", ACCOUNT),
        ("+14155550124", "Code 7777", "imap", ACCOUNT),
        ("+14155550125", "9999", "imap", ACCOUNT),
    ]
    assert any(r.external_id.startswith("uid:") for r in rows)  # no Message-ID: UIDVALIDITY:UID
    assert imap.unseen(mailbox) == 0  # flagged only after the store committed
    assert poll_mailbox(config(imap, mailbox, tls), scope, ACCOUNT) == 0
    assert len(all_messages(engine)) == 3


def test_a_message_seen_again_is_not_stored_twice(
    imap: ImapServer, mailbox: str, engine: sa.Engine
) -> None:
    raw = sms_email("14155550123@sms.example.com", "Your code is 4821")
    imap.deliver(raw, mailbox)
    imap.deliver(raw, mailbox)  # a gateway that sent the same mail twice (same Message-ID)
    assert poll_mailbox(config(imap, mailbox), scope_for(engine), ACCOUNT) == 1
    assert len(all_messages(engine)) == 1


def test_wrong_password_and_untrusted_certificate(imap: ImapServer, mailbox: str) -> None:
    engine = make_engine("sqlite://")
    with pytest.raises(ImapError) as wrong:
        poll_mailbox(config(imap, mailbox, password="not-the-password"), scope_for(engine), None)
    assert "not-the-password" not in str(wrong.value)
    assert "Authentication failed" in str(wrong.value) and "b'" not in str(wrong.value)
    assert "not-the-password" not in repr(config(imap, mailbox, password="not-the-password"))
    with pytest.raises(ImapError, match="failed"):
        poll_mailbox(config(imap, mailbox, cafile=None), scope_for(engine), None)  # type: ignore[arg-type]
    with pytest.raises(ImapError, match="cannot be opened"):
        poll_mailbox(config(imap, "no-such-box"), scope_for(engine), None)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLERID_IMAP_HOST", "imap.example.com")
    monkeypatch.setenv("CALLERID_IMAP_USERNAME", "otp")
    monkeypatch.setenv("CALLERID_IMAP_PASSWORD", "s3cret-value")
    monkeypatch.setenv("CALLERID_IMAP_TLS", "starttls")
    loaded = ImapSettings().to_config()
    assert (loaded.host, loaded.resolved_port, loaded.tls) == ("imap.example.com", 143, "starttls")
    assert loaded.password == "s3cret-value" and "s3cret" not in repr(loaded)
    monkeypatch.delenv("CALLERID_IMAP_PASSWORD")
    with pytest.raises(ImapError, match="CALLERID_IMAP_PASSWORD"):
        ImapSettings().to_config()


def raw_email(headers: str, body: bytes = b"Your code is 4821") -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body + b"\r\n"


def test_a_mail_with_parts_no_parser_reads_is_stored_all_the_same(
    imap: ImapServer, mailbox: str, engine: sa.Engine
) -> None:
    """Year 9999 west of UTC (OverflowError), headers and a charset the email package trips on:
    each once stopped every poll, nothing stored or flagged."""
    imap.deliver(sms_email("14155550123@sms.example.com", "Your code is 1111"), mailbox)
    imap.deliver(
        raw_email(
            "From: 14155550124@sms.example.com\nDate: Fri, 31 Dec 9999 23:59:59 -0100\n"
            f"Message-ID: <{uuid.uuid4()}@x>\n"
        ),
        mailbox,
    )
    imap.deliver(
        raw_email(f"From: <\nSubject: SMS from +1 415 555 0125\nMessage-ID: <{uuid.uuid4()}@x>\n"),
        mailbox,
    )
    imap.deliver(
        raw_email(
            "From: 14155550126@sms.example.com\nSubject: code 2222\n"
            f"Message-ID: <{uuid.uuid4()}@x>\nContent-Type: text/plain; charset=idna\n",
            b"a" * 100,
        ),
        mailbox,
    )
    before = datetime.now(UTC)
    assert poll_mailbox(config(imap, mailbox), scope_for(engine), ACCOUNT) == 4
    rows = {r.from_number: r for r in all_messages(engine)}
    assert set(rows) == {"+14155550123", "+14155550124", "+14155550125", "+14155550126"}
    assert rows["+14155550124"].text == "Your code is 4821"
    assert as_utc(rows["+14155550124"].received_at) >= before - timedelta(seconds=1)  # read time
    assert rows["+14155550125"].text == "Your code is 4821"
    assert rows["+14155550126"].text == "code 2222"  # the body unreadable: the subject stands in
    assert imap.unseen(mailbox) == 0


def test_a_mail_that_cannot_be_read_at_all_is_flagged_and_never_blocks_the_others(
    imap: ImapServer,
    mailbox: str,
    engine: sa.Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever else a mail may hold that no code foresaw (here: to_message fails on it)."""
    real = imap_module.to_message

    def failing(raw: bytes, fallback_id: str, account: str | None) -> InboundMessage:
        if b"poison" in raw:
            raise ValueError(f"cannot read {raw.decode(errors='replace')}")
        return real(raw, fallback_id, account)

    monkeypatch.setattr(imap_module, "to_message", failing)
    imap.deliver(sms_email("14155550123@sms.example.com", "poison 918273"), mailbox)
    imap.deliver(sms_email("14155550124@sms.example.com", "Your code is 4821"), mailbox)
    with caplog.at_level(logging.WARNING, logger="callerid.inbox.imap"):
        assert poll_mailbox(config(imap, mailbox), scope_for(engine), ACCOUNT) == 1
    assert [r.from_number for r in all_messages(engine)] == ["+14155550124"]
    assert imap.unseen(mailbox) == 0  # the next poll does not fail on it again
    assert "cannot be read (ValueError)" in caplog.text and "918273" not in caplog.text
    assert poll_mailbox(config(imap, mailbox), scope_for(engine), ACCOUNT) == 0
