"""`callerid run FILE.csv`: the main job, with progress bars and a summary; and `callerid runs`.

Before anything starts (Prefect, the sandbox, the ledger) the input is checked the way
`callerid check` checks it, and the credentials are checked for half a pair: a problem there is
one line and exit 2, in a second or two. Then the `bulk_verify` flow runs in a worker thread (see
`prefect_run`), and the run ends with one line that says what happened.

Exit status: 0 when every accepted number ended verified; 1 when some did not, when no row could
be verified, or when the run failed (its reason in one line, the traceback in the run's
`run.log`); 2 for a bad invocation (unusable file or option, half a pair of credentials).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from callerid.cli import crash
from callerid.cli.terminal import console

if TYPE_CHECKING:
    from rich.table import Table

    from callerid.ingest import IngestResult
    from callerid.pipeline.options import RunPaths
    from callerid.settings import Settings


# The options of `callerid run` are the parameters of `run_command`, and nothing else: each is
# passed to the `bulk_verify` flow under its own name unless it is listed here. A new option is a
# new parameter there (and of the flow), in one place.
CLI_ONLY = frozenset({"csv_path", "debug"})
FLOW_NAMES = {"region": "default_region", "reply_delay": "sandbox_reply_delay_s"}
# The options `ingest_csv` takes too, checked before anything starts (its keyword for each).
INGEST_NAMES = {
    "region": "default_region",
    "encoding": "encoding",
    "channel": "default_channel",
    "subaccount": "default_subaccount",
    "sheet": "sheet",
    "owner": "default_owner",
}


def flow_parameters(options: dict[str, Any], *, run_id: str) -> dict[str, Any]:
    params = {FLOW_NAMES.get(k, k): v for k, v in options.items() if k not in CLI_ONLY}
    return {"csv_path": str(options["csv_path"]), **params, "run_id": run_id}


def _refuse(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def check_input(options: dict[str, Any]) -> IngestResult:
    """The file and the ingest options, as `callerid check` reads them (exit 2 if unusable)."""
    from callerid.ingest import IngestInputError, ingest_csv

    arguments = {INGEST_NAMES[k]: v for k, v in options.items() if k in INGEST_NAMES}
    try:
        ingest = ingest_csv(options["csv_path"], **arguments)
    except IngestInputError as exc:  # a bad option (IngestOptionError) is one too
        raise _refuse(str(exc)) from None
    if ingest.data_rows == 0:
        raise _refuse(f"{options['csv_path']}: nothing to verify: no rows under the header")
    return ingest


def check_credentials(settings: Settings) -> Settings:
    """Half a pair of credentials is a mistake, not a reason to use the sandbox (exit 2).

    Under a Prefect server the token may be the `plivo-auth-token` Secret block, as for the
    deployments: it is looked up there before giving up."""
    problem = settings.missing_credential()
    if problem and settings.plivo_auth_id and os.environ.get("PREFECT_API_URL"):
        from tasks.account import TOKEN_BLOCK, account_settings

        settings = account_settings()
        if settings.missing_credential():
            problem += f", and the Prefect server has no Secret block {TOKEN_BLOCK}"
        else:
            problem = None
    if problem:
        raise _refuse(f"{problem}: set both for Plivo, or neither for the local sandbox")
    return settings


def _nothing_to_verify(ingest: IngestResult, paths: RunPaths) -> typer.Exit:
    """Every row rejected: the reports say why, and no run starts (exit 1)."""
    from callerid.pipeline.report import write_run_reports

    write_run_reports(paths, ingest, {})
    console.print(
        f"[red]no row could be verified: {len(ingest.rejected)} rejected[/red] "
        f"(see {paths.rejects_csv})",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(1)


def _summary(result: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="Run summary")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, n in dict(result.get("counts", {})).items():
        table.add_row(status, str(n))
    table.add_row("[bold]total", str(sum(dict(result.get("counts", {})).values())))
    return table


def _activity(settings: Settings, run_id: str) -> dict[str, int]:
    """What this run did to numbers, from the ledger's events: transitions by target status."""
    from callerid.ledger import open_ledger

    with open_ledger(settings.resolved_database_url()) as ledger, ledger.unit_of_work() as uow:
        return uow.events.counts_for_run(run_id)


def outcome_line(result: dict[str, Any], activity: dict[str, int]) -> str:
    """One line that says what the run did: what it sent, what was verified before it."""
    counts: dict[str, int] = dict(result.get("counts", {}))
    ok = counts.get("verified", 0) + counts.get("already_verified", 0)
    sent = activity.get("initiating", 0)
    by_this_run = activity.get("verified", 0)
    rejected = counts.get("rejected", 0)
    tail = f"; {rejected} row(s) rejected (see rejects.csv)" if rejected else ""
    if result.get("not_verified", 0):
        return (
            f"[red]{result['not_verified']} number(s) did not verify[/red] (see results.csv): "
            f"{ok} verified, {sent} verification(s) sent by this run{tail}"
        )
    if sent == 0 and by_this_run == 0:
        return f"{ok} already verified, nothing sent{tail}"
    already = max(0, ok - by_this_run)
    return (
        f"{ok} verified: {by_this_run} by this run ({sent} verification(s) sent), "
        f"{already} already verified{tail}"
    )


def launch(options: dict[str, Any]) -> None:
    """`callerid run` with its options by parameter name (see `flow_parameters`)."""
    from callerid.cli import prefect_run
    from callerid.pipeline.options import RunPaths
    from callerid.settings import load_settings

    started = time.monotonic()
    prefect_run.prefect_env_defaults()  # before anything imports Prefect
    if options["channel"] not in ("sms", "call", "auto"):
        raise typer.BadParameter("channel must be 'sms', 'call' or 'auto'", param_hint="--channel")
    settings = load_settings()
    if settings.missing_credential() and not os.environ.get("PREFECT_API_URL"):
        check_credentials(settings)  # exit 2 now: the input check can wait
    ingest = check_input(options)
    settings = check_credentials(settings)
    run_id = str(uuid.uuid4())
    paths = RunPaths.for_run(settings.output_dir, run_id)
    if not ingest.accepted and not options["dry_run"]:
        raise _nothing_to_verify(ingest, paths)
    accepted = len(ingest.accepted)
    del ingest  # the flow reads the file itself; this copy was the check
    if settings.uses_sandbox:
        from callerid.pipeline.environment import SANDBOX_NOTICE

        console.print(f"[yellow]{SANDBOX_NOTICE}")
    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "Starting Prefect's temporary server (no PREFECT_API_URL); on a fresh machine its "
            "first start migrates a database and can take a minute."
        )
    console.print(f"run id {run_id}: {accepted} numbers; rerun with the same file to resume it")
    box: dict[str, Any] = {}
    debug = crash.debugging()
    with prefect_run.run_logging(paths, debug=debug):
        thread = prefect_run.start_flow(flow_parameters(options, run_id=run_id), box)
        prefect_run.watch(thread, paths, console.get(), bars=not options["dry_run"])
        if "error" in box:
            prefect_run.log_failure(box["error"])
    total_s = time.monotonic() - started
    if "error" in box:
        if debug:
            raise box["error"]
        _failed(box["error"], run_id, paths)
    _finish(box["result"], settings, run_id, total_s, dry_run=options["dry_run"])


def _failed(exc: BaseException, run_id: str, paths: RunPaths) -> NoReturn:
    """A run that did not finish: what it did so far (when its reports were written), why it
    stopped in one line, and where the traceback is. Exit 1."""
    from callerid.pipeline.finish import RunIncompleteError

    if isinstance(exc, RunIncompleteError):
        console.print(_summary(exc.result))
        reason = "; ".join(exc.reasons)
        console.print(
            f"[red]run {run_id} did not finish:[/red] {reason}\n  reports: "
            f"{exc.result.get('results_csv')}; rerun with the same file to finish it\n"
            f"  details: {paths.run_log}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(
        f"[red]run {run_id} failed:[/red] {_reason(exc)}\n  details: {paths.run_log}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


def _reason(exc: BaseException) -> str:
    """Our own errors say what happened in their message; anything else is named by its type."""
    from callerid.pipeline.environment import PlivoAccessError

    if isinstance(exc, PlivoAccessError):
        return str(exc)
    return crash.one_line(exc)


def _finish(
    result: dict[str, Any], settings: Settings, run_id: str, total_s: float, *, dry_run: bool
) -> None:
    if dry_run:
        console.print("[bold]Dry run: nothing was sent. The plan:")
        for line in result["plan_lines"]:
            console.print(f"  {line}")
        return
    console.print(_summary(result))
    console.print(f"results: {result['results_csv']}\nrejects: {result['rejects_csv']}")
    console.print(outcome_line(result, _activity(settings, run_id)), highlight=False)
    elapsed = result.get("elapsed_s")
    if isinstance(elapsed, int | float):
        console.print(
            f"took {elapsed:.1f} s from reading the file to writing the reports (as summary.md "
            f"says); {total_s:.1f} s in all, with Prefect's start-up"
        )
    else:
        console.print(f"took {total_s:.1f} s in all, with Prefect's start-up")
    if result.get("not_verified", 0):
        raise typer.Exit(1)


def runs(
    limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 10,
) -> None:
    """List recent runs recorded in the ledger, newest first, with their counts."""
    from rich.table import Table

    from callerid.ledger import open_ledger
    from callerid.settings import load_settings

    settings = load_settings()
    table = Table(title="Recent runs")
    for column in ("run id", "account", "started", "finished", "input", "counts"):
        table.add_column(column, overflow="fold")
    with open_ledger(settings.resolved_database_url()) as ledger, ledger.unit_of_work() as uow:
        for run in uow.runs.latest(limit=limit):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(dict(run.counts).items()))
            table.add_row(
                run.id,
                run.account,
                f"{run.started_at:%Y-%m-%d %H:%M:%S}",
                f"{run.finished_at:%H:%M:%S}" if run.finished_at else "[yellow]not finished",
                run.input_path or "",
                counts,
            )
    console.print(table)


def run_command(
    csv_path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            metavar="FILE",
            help="The file of numbers (what `callerid check` reads).",
        ),
    ],
    region: Annotated[str, typer.Option(help="Region for numbers without +CC.")] = "US",
    channel: Annotated[
        str, typer.Option(help="Default OTP channel: sms, call, or auto (fixed lines call).")
    ] = "auto",
    subaccount: Annotated[str | None, typer.Option(help="Default subaccount.")] = None,
    max_attempts: Annotated[int, typer.Option(min=1, help="Initiations per number.")] = 2,
    max_in_flight: Annotated[int, typer.Option(min=1, help="Live verifications.")] = 300,
    batch_size: Annotated[int, typer.Option(min=1, help="Numbers per task run.")] = 100,
    encoding: Annotated[str | None, typer.Option(help="CSV encoding (detected).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; send nothing.")] = False,
    ask_person: Annotated[bool, typer.Option(help="Ask for codes in the UI.")] = False,
    reply_delay: Annotated[float, typer.Option(help="Sandbox: seconds to reply.")] = 1.0,
    sheet: Annotated[str | None, typer.Option(help="Spreadsheet sheet to read.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner email for rows without.")] = None,
    smtp_block: Annotated[
        str | None,
        typer.Option(help="prefect-email block for owners' mail (or CALLERID_SMTP_URL)."),
    ] = None,
    notify: Annotated[
        str | None, typer.Option(help="Prefect notification block (slug/name) told about waves.")
    ] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL of the code page in owners' links.")
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Tracebacks and Prefect's errors on the terminal.")
    ] = False,
) -> None:
    """Verify every number of FILE as a caller ID (the sandbox if no credentials)."""
    if debug:  # `callerid --debug run` set it already; `run --debug` says the same
        crash.set_debug(True)
    launch(dict(locals()))


def register(app: typer.Typer) -> None:
    """Add `callerid run` and `callerid runs` to the top-level app."""
    app.command("runs")(runs)
    app.command("run")(run_command)
