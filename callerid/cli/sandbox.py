"""`callerid sandbox serve`: the local Plivo Verified Caller ID API (and phone network)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated

import typer

from callerid.cli.stopping import stop_on_signals, wait_until_stopped
from callerid.masking import mask_secret

sandbox_app = typer.Typer(
    rich_markup_mode=None, no_args_is_help=True, help="The local Plivo sandbox."
)


def parse_rate(text: str) -> tuple[int, float]:
    """`300/5` -> (300, 5.0): at most 300 requests in any 5 seconds."""
    count, sep, period = text.partition("/")
    try:
        limit, seconds = int(count), float(period if sep else "5")
    except ValueError:
        raise typer.BadParameter(f"rate must look like 300/5, got {text!r}") from None
    if limit < 1 or seconds <= 0:
        raise typer.BadParameter("rate needs at least 1 request in a period above 0 seconds")
    return limit, seconds


def parse_subaccount(text: str) -> tuple[str, str]:
    """`SA...=TOKEN` -> (auth id, token)."""
    auth_id, sep, token = text.partition("=")
    if not sep or not token or len(auth_id) != 20 or not auth_id.startswith("SA"):
        raise typer.BadParameter("--subaccount must look like SA<18 characters>=TOKEN")
    return auth_id, token


@sandbox_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8765,
    auth_id: Annotated[
        str | None,
        typer.Option(help="Main account auth id.  [default: the sandbox's own MA... id]"),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            envvar="CALLERID_SANDBOX_AUTH_TOKEN",
            help="Main account auth token (never printed); better from the environment than "
            "on the command line, where other users of the machine can see it.  [default: the "
            "sandbox's own token]",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        str, typer.Option(help="Requests allowed per rolling period: N/SECONDS.")
    ] = "300/5",
    latency_ms: Annotated[int, typer.Option(min=0, help="Added to every API response.")] = 0,
    otp_digits: Annotated[int, typer.Option(min=4, max=8, help="Length of the OTP codes.")] = 4,
    reply_delay_s: Annotated[
        float, typer.Option(min=0, help="Seconds until a phone texts its OTP.")
    ] = 1.0,
    inbox_url: Annotated[
        str | None, typer.Option(help="Where OTP SMS webhooks are POSTed.")
    ] = None,
    drop_dir: Annotated[
        Path | None, typer.Option(help="Also write each OTP SMS as a JSONL file.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for OTPs and UUIDs (repeatable runs).")
    ] = None,
    subaccount: Annotated[
        list[str] | None,
        typer.Option(
            help="Create a subaccount AUTH_ID=TOKEN (repeatable). None exist unless asked for.",
            show_default=False,
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            dir_okay=False,
            help="Keep the account (caller IDs, subaccounts) in this file, shared with every "
            "process using it; e.g. out/sandbox-account.json, the embedded default's account.",
        ),
    ] = None,
    default_subaccounts: Annotated[
        bool,
        typer.Option(
            "--default-subaccounts",
            help="Create the two well-known sandbox subaccounts (public tokens).",
        ),
    ] = False,
) -> None:
    """Serve the sandbox until Ctrl-C."""
    from callerid.sandbox.backend import SandboxBackend
    from callerid.sandbox.server import SandboxServer
    from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, DEFAULT_SUBACCOUNTS

    auth_id = auth_id or DEFAULT_AUTH_ID
    auth_token = auth_token or DEFAULT_AUTH_TOKEN
    if len(auth_id) != 20 or auth_id[:2] not in ("MA", "SA"):
        raise typer.BadParameter("auth id must be MA or SA followed by 18 characters")
    subaccounts = dict(DEFAULT_SUBACCOUNTS) if default_subaccounts else {}
    subaccounts.update(parse_subaccount(text) for text in subaccount or [])
    from callerid.sandbox.persistence import StateFileError

    try:
        backend = SandboxBackend(
            seed=seed,
            otp_digits=otp_digits,
            rate=parse_rate(rate),
            auth_id=auth_id,
            auth_token=auth_token,
            subaccounts=subaccounts,
            state_file=state,
        )
    except (StateFileError, OSError) as exc:
        typer.echo(f"error: --state {state}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        server = SandboxServer(
            backend,
            host=host,
            port=port,
            inbox_url=inbox_url,
            reply_delay_s=reply_delay_s,
            latency_ms=latency_ms,
            drop_dir=drop_dir,
        )
    except OSError as exc:  # bind failed: in use, no such address, not allowed
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        typer.echo(f"error: cannot listen on {host}:{port}: {reason}", err=True)
        raise typer.Exit(2) from None
    server.start()
    stop_on_signals()  # before the first line: a signal sent on seeing it is honoured
    try:
        typer.echo(f"Plivo sandbox listening on {server.url}")
        typer.echo(f"  PLIVO_API_URL={server.url}")
        typer.echo(f"  PLIVO_AUTH_ID={auth_id}  PLIVO_AUTH_TOKEN={mask_secret(auth_token)}")
        typer.echo(f"  subaccounts: {', '.join(backend.subaccounts) or 'none'}")
        typer.echo(f"  OTP SMS -> {inbox_url or 'nowhere (read them at /_sandbox/messages)'}")
        if drop_dir:
            typer.echo(f"  OTP SMS files -> {drop_dir}")
        if state:
            typer.echo(f"  account state -> {state}")
        wait_until_stopped()  # Ctrl-C or `kill`, even when started in the background
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    """Add `callerid sandbox ...` to the top-level app."""
    app.add_typer(sandbox_app, name="sandbox")
