"""`callerid inbox serve|list|assign|take-files|poll-imap` and `callerid otp submit`.

The account is PLIVO_AUTH_ID (the sandbox's account when no credentials are configured, as for
`callerid run`); the database is CALLERID_DATABASE_URL or the SQLite file under the output folder.
Codes are masked in everything printed. Exit status: 0 done, 1 refused (unknown message, not a
valid code...; a code for a number that no live verification waits for is stored but exits 1),
2 bad configuration.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callerid.cli.stopping import stop_on_signals, wait_until_stopped
from callerid.cli.terminal import console as _terminal
from callerid.masking import mask_codes_in_text, mask_otp, mask_secret

if TYPE_CHECKING:
    from rich.console import Console

    from callerid.settings import Settings

inbox_app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="The OTP inbox: webhook, sources, messages."
)
otp_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="Codes typed by a person.")
SUBACCOUNT_TOKENS_ENV = "CALLERID_INBOX_SUBACCOUNT_TOKENS"  # "SA...:token,SA...:token"
LINK_SECRET_ENV = "CALLERID_LINK_SECRET"  # callerid.people.keys.ENV_NAME (not imported: --help)

DatabaseUrl = Annotated[
    str | None, typer.Option(help="Ledger database URL (default: CALLERID_DATABASE_URL).")
]
Account = Annotated[str | None, typer.Option(help="Plivo auth id (default: PLIVO_AUTH_ID).")]


def _account(settings: Settings, given: str | None = None) -> tuple[str, str]:
    """(auth id, token); the sandbox's account when nothing is configured."""
    from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

    if settings.uses_sandbox:
        return given or DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN
    assert settings.plivo_auth_id and settings.plivo_auth_token
    return given or settings.plivo_auth_id, settings.plivo_auth_token.get_secret_value()


def _scope(settings: Settings) -> Any:
    from callerid.inbox import session_scope

    return session_scope(settings.resolved_database_url())


def _console() -> Console:
    return _terminal.get()  # made per command: it reads the terminal's width (COLUMNS) when used


def _fail(message: str, code: int = 1) -> typer.Exit:
    _console().print(f"[red]{message}[/red]", highlight=False)
    return typer.Exit(code)


def _subaccount_tokens() -> dict[str, str]:
    raw = os.environ.get(SUBACCOUNT_TOKENS_ENV, "")
    tokens: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        auth_id, sep, token = item.partition(":")
        if not sep or not auth_id or not token:
            raise _fail(f"{SUBACCOUNT_TOKENS_ENV} must look like SA...:token,SA...:token", 2)
        tokens[auth_id.strip()] = token.strip()
    return tokens


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: no other machine can reach the server."""
    bare = host.strip().strip("[]")
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


@inbox_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8780,
    public_url: Annotated[
        str | None,
        typer.Option(help="The URL Plivo calls (signatures are over it). Default: own address."),
    ] = None,
    allow_v2: Annotated[
        bool, typer.Option(help="Accept legacy V2 signatures when no V3 header came.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Receive Plivo inbound-SMS webhooks into the inbox, and serve the owners' code page
    (GET/POST /codes/<link>), until Ctrl-C."""
    from callerid.inbox import WebhookServer
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    if settings.uses_sandbox and not is_loopback(host):
        typer.echo(
            f"error: refusing to listen on {host} without Plivo credentials: anyone could sign "
            "webhooks with the sandbox's public token (set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN, "
            "or listen on 127.0.0.1)",
            err=True,
        )
        raise typer.Exit(2)
    account, token = _account(settings)
    tokens = {account: token, **_subaccount_tokens()}
    try:
        server = WebhookServer(
            settings.resolved_database_url(),
            account,
            tokens,
            token,
            public_url,
            host,
            port,
            allow_v2,
        )
        # The link key now: a CALLERID_LINK_SECRET too short is exit 2 here, not a 500 on the
        # page; without one, the ledger's key is generated (once, for every process) and kept.
        server.code_page.key()
    except (ValueError, OSError) as exc:  # LinkSecretError is a ValueError
        raise _fail(f"cannot serve: {exc}", 2) from None
    server.start()
    stop_on_signals()  # before the first line: a signal sent on seeing it is honoured
    try:
        typer.echo(f"Inbox webhook listening on {server.listen_url}")
        typer.echo(f"  public URL (set it as the Plivo application's message_url): {server.url}")
        typer.echo(
            f"  account {account}, token {mask_secret(token)}, V2 {'on' if allow_v2 else 'off'}"
        )
        key_from = LINK_SECRET_ENV if os.environ.get(LINK_SECRET_ENV, "").strip() else "the ledger"
        typer.echo(
            f"  owners' code page: {server.code_page_base}/codes/<link> (links signed with the key "
            f"from {key_from}; give `callerid run --public-url {server.code_page_base}`)"
        )
        wait_until_stopped()  # Ctrl-C or `kill`, even when started in the background
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@inbox_app.command("list")
def list_messages(
    status: Annotated[
        str | None, typer.Option(help="new, used, unmatched, ambiguous or stale.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    account: Account = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Show inbox messages (codes masked)."""
    from callerid.inbox import store
    from callerid.ledger.models import InboxStatus

    if status is not None and status not in {s.value for s in InboxStatus}:
        raise _fail(f"unknown status {status!r}: use {', '.join(s.value for s in InboxStatus)}", 2)
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    with _scope(settings)() as session:
        messages = store.list_messages(session, status, account, limit)
    from rich.markup import escape
    from rich.table import Table

    table = Table("id", "status", "source", "from", "to", "received", "number", "code", "text")
    for m in messages:
        cells = (
            str(m.id),
            m.status,
            m.source,
            m.from_number or "",
            m.to_number or "",
            m.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            m.matched_e164 or "",
            mask_otp(m.code),
            mask_codes_in_text(m.text)[:60] + (f"  ({m.note})" if m.note else ""),
        )
        table.add_row(*(escape(c) for c in cells))  # a sender's text is not markup
    console = _console()
    console.print(table)
    console.print(f"{len(messages)} message(s)")


@inbox_app.command()
def assign(
    message_id: Annotated[int, typer.Argument(help="The message's id (from `inbox list`).")],
    number: Annotated[str, typer.Argument(help="The number it belongs to (E.164).")],
    code: Annotated[
        str | None, typer.Option(help="The code, when the text has none or several.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Settle a message: it belongs to NUMBER (the next match pass hands its code on)."""
    from callerid.inbox import InboxError, store
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    try:
        with _scope(settings)() as session:
            settled = store.assign(session, message_id, number, code)
    except InboxError as exc:
        raise _fail(exc.message) from None
    typer.echo(
        f"message {settled.id} assigned to {settled.matched_e164}, code {mask_otp(code or '-')}"
    )


@inbox_app.command("take-files")
def take_files(
    folder: Annotated[Path, typer.Argument(help="The drop folder.")],
    account: Account = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Store the messages of every CSV/JSONL file waiting in FOLDER (each file taken once)."""
    from callerid.inbox import take_files as take
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    results = take(folder, _scope(settings), _account(settings, account)[0])
    for r in results:
        typer.echo(f"{r.path}: {r.stored} stored, {r.duplicates} known, {len(r.rejected)} rejected")
    typer.echo(f"{len(results)} file(s) taken")


@inbox_app.command("poll-imap")
def poll_imap(account: Account = None, database_url: DatabaseUrl = None) -> None:
    """Store the unseen messages of the IMAP mailbox (CALLERID_IMAP_* settings)."""
    from callerid.inbox import ImapError, ImapSettings, poll_mailbox
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    try:
        stored = poll_mailbox(
            ImapSettings().to_config(), _scope(settings), _account(settings, account)[0]
        )
    except ImapError as exc:
        raise _fail(exc.message, 2) from None
    typer.echo(f"{stored} new message(s)")


@otp_app.command()
def submit(
    number: Annotated[str, typer.Argument(help="The number that received the code (E.164).")],
    code: Annotated[str, typer.Argument(help="The 4-8 digit code.")],
    account: Account = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Hand in a code a person received (a voice call, a phone without SMS forwarding).

    Exit 1 when no live verification waits for the number: the code is kept in the inbox (a
    run started later does not use it: its verification sends a new code), and the number may
    be mistyped."""
    from datetime import UTC, datetime

    from callerid.inbox import InboxError, submit_code
    from callerid.inbox.text import normalise_number
    from callerid.inbox.waiting import still_waiting
    from callerid.settings import load_settings

    settings = load_settings(database_url=database_url)
    auth_id = _account(settings, account)[0]
    try:
        with _scope(settings)() as session:
            message_id, _ = submit_code(session, auth_id, number, code)
            e164 = normalise_number(number) or number.strip()
            waiting = still_waiting(session, auth_id, [e164], datetime.now(UTC))
    except InboxError as exc:
        raise _fail(exc.message) from None
    if not waiting:
        raise _fail(
            f"no live verification waits for {e164} (account {auth_id}): code "
            f"{mask_otp(code)} stored as inbox message {message_id}, but nothing will use it. "
            "Check the number, or start the run that verifies it (it sends a new code)."
        )
    typer.echo(f"code {mask_otp(code)} recorded for {e164} (inbox message {message_id})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(inbox_app, name="inbox")
    app.add_typer(otp_app, name="otp")
