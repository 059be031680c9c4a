"""The IMAP source against a real dovecot over TLS (IMAPS and STARTTLS)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa

from callerid.inbox.imap import ImapConfig, ImapError, ImapSettings, TlsMode, poll_mailbox
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
