"""End to end through each OTP source against the sandbox: initiate over HTTP, the code arrives
(signed webhook, drop file, IMAP mailbox, a person at the CLI), the matcher pairs it with the
verification, and the client completes it; the sandbox then lists the number as verified."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.inbox import WebhookServer, match_new_messages, poll_mailbox, session_scope, store
from callerid.inbox.filedrop import take_files
from callerid.inbox.imap import ImapConfig, TlsMode
from callerid.ledger import Ledger, open_ledger
from callerid.ledger.models import InboxStatus
from callerid.plivo import InvalidOtpError, PlivoClient
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, Behaviour, SandboxServer
from tests.imap_server import PASSWORD, USER, dovecot
from tests.inbox_support import add_number

A, B = "+14155550123", "+14155550124"


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with open_ledger(ledger_url) as opened:
        yield opened


def until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def inbox_count(ledger: Ledger) -> int:
    with ledger.unit_of_work() as uow:
        return len(store.list_messages(uow.session, limit=1000))


async def initiate(client: PlivoClient, ledger: Ledger, number: str, channel: str = "sms") -> str:
    """Initiate, and record the live verification as the pipeline would."""
    started = datetime.now(UTC)
    initiation = await client.initiate(number, channel=channel)
    with ledger.unit_of_work() as uow:
        add_number(
            uow.session,
            number,
            verification_uuid=initiation.verification_uuid,
            initiated_at=started,
            account=DEFAULT_AUTH_ID,
        )
        uow.commit()
    return initiation.verification_uuid


async def complete_matched(client: PlivoClient, ledger: Ledger) -> dict[str, str]:
    """The completer's loop: match, submit each code, settle each message."""
    with ledger.unit_of_work() as uow:
        matches = match_new_messages(uow, DEFAULT_AUTH_ID, datetime.now(UTC))
        uow.commit()
    outcome: dict[str, str] = {}
    for m in matches:
        try:
            await client.complete(m.verification_uuid, m.code, phone_number=m.e164)
        except InvalidOtpError as exc:
            with ledger.unit_of_work() as uow:
                store.mark_rejected(
                    uow.session, m.message_id, exc.api_message or "", m.e164, m.code
                )
                uow.commit()
            outcome[m.e164] = "refused"
            continue
        with ledger.unit_of_work() as uow:
            store.mark_used(uow.session, m.message_id, m.e164, m.code)
            uow.commit()
        outcome[m.e164] = "verified"
    return outcome


async def assert_listed(client: PlivoClient, *numbers: str) -> None:
    for number in numbers:
        assert (await client.get(number)).phone_number == number


def client_for(sandbox: SandboxServer) -> PlivoClient:
    return PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox.url)


async def test_webhook_with_sandbox_signed_sms(ledger: Ledger) -> None:
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    with (
        WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN) as hook,
        SandboxServer(inbox_url=hook.url, reply_delay_s=0.1, seed=3) as sandbox,
    ):
        sandbox.network.set_behaviour(B, Behaviour.WRONG_CODE)
        async with client_for(sandbox) as client:
            await initiate(client, ledger, A)
            await initiate(client, ledger, B)
            until(lambda: inbox_count(ledger) == 2)
            assert await complete_matched(client, ledger) == {A: "verified", B: "refused"}
            await assert_listed(client, A)
        assert all(d.ok and d.status_code == 200 for d in sandbox.network.deliveries())
    with ledger.unit_of_work() as uow:
        statuses = {m.matched_e164: m.status for m in store.list_messages(uow.session)}
    assert statuses == {A: InboxStatus.USED.value, B: InboxStatus.UNMATCHED.value}


async def test_file_drop(ledger: Ledger, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    with SandboxServer(drop_dir=drop, reply_delay_s=0.1, seed=4) as sandbox:
        async with client_for(sandbox) as client:
            await initiate(client, ledger, A)
            until(lambda: any(drop.glob("*.jsonl")))
            results = take_files(drop, session_scope(ledger), DEFAULT_AUTH_ID)
            assert [r.stored for r in results] == [1]
            assert await complete_matched(client, ledger) == {A: "verified"}
            await assert_listed(client, A)


async def test_imap_mailbox(ledger: Ledger) -> None:
    with dovecot() as imap, SandboxServer(seed=5) as sandbox:
        config = ImapConfig(
            imap.host, USER, PASSWORD, imap.imaps_port, TlsMode.SSL, cafile=imap.cafile
        )
        async with client_for(sandbox) as client:
            await initiate(client, ledger, A)
            # the SMS-to-email gateway: the text the phone received, mailed from <digits>@sms...
            sent = sandbox.backend.messages(A)[0]
            mail = EmailMessage()
            mail["From"] = f"{A.lstrip('+')}@sms.example.com"
            mail["To"] = "otp-inbox@example.com"
            mail["Subject"] = "SMS"
            mail.set_content(f"Your verification code is {sent.otp}")
            imap.deliver(bytes(mail))
            assert poll_mailbox(config, session_scope(ledger), DEFAULT_AUTH_ID) == 1
            assert await complete_matched(client, ledger) == {A: "verified"}
            await assert_listed(client, A)


async def test_cli_otp_submit_for_a_voice_call(
    ledger: Ledger, ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLERID_DATABASE_URL", ledger_url)
    monkeypatch.delenv("PLIVO_AUTH_ID", raising=False)
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)
    runner = CliRunner()
    with SandboxServer(seed=6) as sandbox:
        sandbox.network.set_behaviour(A, Behaviour.SILENT)  # the call is answered; nothing texted
        async with client_for(sandbox) as client:
            await initiate(client, ledger, A, channel="call")
            heard = sandbox.backend.messages(A)[0].otp  # what the person heard on the phone
            bad = runner.invoke(app, ["otp", "submit", A, "12ab"])
            assert bad.exit_code == 1 and "4 to 8 digits" in bad.output
            result = runner.invoke(app, ["otp", "submit", A, heard])
            assert result.exit_code == 0, result.output
            assert heard not in result.output and "****" in result.output
            listed = runner.invoke(app, ["inbox", "list", "--status", "new"])
            assert listed.exit_code == 0 and "cli" in listed.output and heard not in listed.output
            assert await complete_matched(client, ledger) == {A: "verified"}
            await assert_listed(client, A)
    used = runner.invoke(app, ["inbox", "list", "--status", "used"])
    assert "1 message(s)" in used.output
