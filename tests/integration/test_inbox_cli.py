"""`callerid inbox list|assign|take-files|serve` on a real ledger file (codes always masked)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from callerid.cli import app
from callerid.cli.inbox import is_loopback
from callerid.inbox import InboundMessage, MessageSource, store
from callerid.ledger import open_ledger
from callerid.plivo.signature import sign_v3
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

runner = CliRunner(env={"COLUMNS": "250"})
MESSAGE_UUID = "4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f405162"


@pytest.fixture
def ledger_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("CALLERID_DATABASE_URL", url)
    monkeypatch.delenv("PLIVO_AUTH_ID", raising=False)
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)
    return url


def add_message(url: str, text: str, external_id: str = "m1") -> int:
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        message = InboundMessage(
            MessageSource.WEBHOOK, external_id, "14155559999", None, text, datetime.now(UTC)
        )
        message_id = store.insert_message(uow.session, message)[0]
        store.set_status(uow.session, message_id, store.InboxStatus.AMBIGUOUS, note="2 codes")
        uow.commit()
    return message_id


def test_list_shows_a_text_that_looks_like_markup_as_it_is(ledger_url: str) -> None:
    """A sender writes the text: `[/]` made Rich refuse the whole table (exit 1, nothing listed)."""
    add_message(ledger_url, "[/] [bold]code 4821[/bold]")
    listed = runner.invoke(app, ["inbox", "list"])
    assert listed.exit_code == 0, listed.output
    assert "[/] [bold]code ****[/bold]" in listed.output


def test_list_and_assign(ledger_url: str) -> None:
    message_id = add_message(ledger_url, "codes 4821 and 9173")
    listed = runner.invoke(app, ["inbox", "list", "--status", "ambiguous"])
    assert listed.exit_code == 0, listed.output
    assert "ambiguous" in listed.output and "2 codes" in listed.output
    assert "4821" not in listed.output and "9173" not in listed.output
    assert runner.invoke(app, ["inbox", "list", "--status", "bogus"]).exit_code == 2
    refused = runner.invoke(app, ["inbox", "assign", str(message_id), "+14155550123"])
    assert refused.exit_code == 1 and "pass --code" in refused.output
    unknown = runner.invoke(app, ["inbox", "assign", "999", "+14155550123", "--code", "4821"])
    assert unknown.exit_code == 1 and "no inbox message with id 999" in unknown.output
    ok = runner.invoke(app, ["inbox", "assign", str(message_id), "+14155550123", "--code", "9173"])
    assert ok.exit_code == 0, ok.output
    assert "+14155550123" in ok.output and "9173" not in ok.output
    with open_ledger(ledger_url) as ledger, ledger.unit_of_work() as uow:
        settled = store.get_message(uow.session, message_id)
    assert (settled.status, settled.matched_e164, settled.code) == ("new", "+14155550123", "9173")


def test_take_files(ledger_url: str, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    line = {"from": "14155550123", "text": "code 4821", "received_at": "2026-11-27T03:00:00Z"}
    (drop / "a.jsonl").write_text(json.dumps(line) + "\nbroken\n")
    result = runner.invoke(app, ["inbox", "take-files", str(drop)])
    assert result.exit_code == 0, result.output
    assert "1 stored, 0 known, 1 rejected" in result.output and "1 file(s) taken" in result.output


def test_serve_receives_signed_webhooks(ledger_url: str) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", "from callerid.cli import main; main()"]
    process = subprocess.Popen(
        [*command, "inbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Inbox webhook listening on http://127.0.0.1:"), first
        public = process.stdout.readline().rsplit(" ", 1)[1].strip()
        masked = process.stdout.readline()
        assert DEFAULT_AUTH_TOKEN not in masked
        params = {
            "From": "14155550123",
            "To": "15005550100",
            "Text": "4821",
            "Type": "sms",
            "MessageUUID": MESSAGE_UUID,
        }
        signature = sign_v3("POST", public, params, "123", DEFAULT_AUTH_TOKEN)
        headers = {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": "123"}
        assert httpx.post(public, data=params, headers=headers).status_code == 200
        assert httpx.post(public, data=params).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    with open_ledger(ledger_url) as ledger, ledger.unit_of_work() as uow:
        rows = store.list_messages(uow.session)
    assert [(m.external_id, m.account) for m in rows] == [(MESSAGE_UUID, DEFAULT_AUTH_ID)]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_serve_without_credentials_refuses_a_non_loopback_address(
    ledger_url: str, host: str
) -> None:
    """Signatures would be checked against the sandbox's public default token."""
    result = runner.invoke(app, ["inbox", "serve", "--host", host, "--port", "0"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: refusing to listen on {host} ")
    assert "PLIVO_AUTH_TOKEN" in lines[0]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("myhost", False),
    ],
)
def test_which_addresses_are_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's `&` leaves it for its children


@pytest.mark.parametrize("command", [["inbox", "serve"], ["sandbox", "serve"]])
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_a_server_started_in_the_background_stops_on_sigint_and_sigterm(
    ledger_url: str, command: list[str], stop_with: signal.Signals
) -> None:
    """A server started by a non-interactive shell's `&` (a script, a CI job) inherits SIGINT
    ignored; before, `inbox serve` relied on Python's default KeyboardInterrupt, which Python does
    not install over an ignored SIGINT, and stayed up for ever (seen in a background CI run)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from callerid.cli import main; main()", *command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=_ignore_sigint,
    )
    try:
        assert process.stdout is not None
        assert "listening on http://127.0.0.1:" in process.stdout.readline()
        process.send_signal(stop_with)
        # A liveness bound, far above the ~1 s a stop takes: the bug was "never".
        assert process.wait(timeout=120) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
