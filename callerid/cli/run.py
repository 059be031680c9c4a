"""`callerid run FILE.csv`: the main job, with progress bars and a summary table.

The flow runs in a worker thread (its own event loop); this thread draws progress from the run's
`progress.json`, which the pipeline rewrites as numbers move. Exit status: 0 when every accepted
number ended verified, 1 when some did not or the run failed, 2 for a bad invocation. Rejected
rows never change the exit status: they are reported in rejects.csv.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from callerid.pipeline.options import RunPaths
from callerid.pipeline.progress import read_progress
from callerid.settings import load_settings

PREFECT_DEFAULTS = {
    # A fresh PREFECT_HOME's first SQLite migration outlasts Prefect's 20 s default start-up
    # timeout on slow disks (prefect-notes §0.6); these must be set before prefect is imported.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Task-run chatter would scroll through the progress bars; warnings still show.
    "PREFECT_LOGGING_LEVEL": "WARNING",
}

console = Console()


def prefect_env_defaults() -> None:
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _run_flow(params: dict[str, Any], box: dict[str, Any]) -> None:
    try:
        from flows.bulk_verify import bulk_verify

        box["result"] = asyncio.run(bulk_verify(**params))
    except BaseException as exc:  # reported by the main thread; nothing is swallowed
        box["error"] = exc


def _watch(thread: threading.Thread, paths: RunPaths) -> None:
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console, transient=False) as bars:
        final = bars.add_task("starting Prefect and the run", total=None, detail="")
        verified = bars.add_task("verified", total=None, detail="")
        while thread.is_alive():
            progress = read_progress(paths.progress_json)
            if progress is not None:
                counts = ", ".join(f"{k} {v}" for k, v in sorted(progress.counts.items()))
                bars.update(
                    final,
                    description=f"numbers final ({progress.phase})",
                    total=progress.total,
                    completed=progress.final,
                    detail=counts,
                )
                bars.update(verified, total=progress.total, completed=progress.verified)
            thread.join(0.25)
        progress = read_progress(paths.progress_json)
        if progress is not None:
            bars.update(final, total=progress.total, completed=progress.final)
            bars.update(verified, total=progress.total, completed=progress.verified)


def _summary(result: dict[str, Any]) -> Table:
    table = Table(title="Run summary")
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, n in dict(result.get("counts", {})).items():
        table.add_row(status, str(n))
    table.add_row("[bold]total", str(sum(dict(result.get("counts", {})).values())))
    return table


def register(app: typer.Typer) -> None:
    """Add `callerid run` to the top-level app."""

    @app.command("runs")
    def runs_command(
        limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 10,
    ) -> None:
        """List recent runs recorded in the ledger, newest first, with their counts."""
        from callerid.ledger import open_ledger

        settings = load_settings()
        table = Table(title="Recent runs")
        for column in ("run id", "account", "started", "finished", "input", "counts"):
            table.add_column(column)
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

    @app.command("run")
    def run_command(
        csv_path: Annotated[
            Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV.")
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
    ) -> None:
        """Verify every number of CSV_PATH as a caller ID (the sandbox if no credentials)."""
        prefect_env_defaults()
        settings = load_settings()
        if channel not in ("sms", "call", "auto"):
            raise typer.BadParameter(
                "channel must be 'sms', 'call' or 'auto'", param_hint="--channel"
            )
        if settings.uses_sandbox:
            from callerid.pipeline.environment import SANDBOX_NOTICE

            console.print(f"[yellow]{SANDBOX_NOTICE}")
        run_id = str(uuid.uuid4())
        paths = RunPaths.for_run(settings.output_dir, run_id)
        params: dict[str, Any] = {
            "csv_path": str(csv_path),
            "default_region": region,
            "channel": channel,
            "subaccount": subaccount,
            "max_attempts": max_attempts,
            "max_in_flight": max_in_flight,
            "batch_size": batch_size,
            "encoding": encoding,
            "dry_run": dry_run,
            "ask_person": ask_person,
            "run_id": run_id,
            "sandbox_reply_delay_s": reply_delay,
            "sheet": sheet,
            "owner": owner,
        }
        if not os.environ.get("PREFECT_API_URL"):
            console.print(
                "Starting Prefect's temporary server (no PREFECT_API_URL); on a fresh machine its "
                "first start migrates a database and can take a minute."
            )
        console.print(f"run id {run_id}: rerun with the same file to resume it")
        box: dict[str, Any] = {}
        started = time.monotonic()
        # The copied context carries Prefect's settings (e.g. a test harness's) into the thread.
        context = contextvars.copy_context()
        thread = threading.Thread(
            target=context.run, args=(_run_flow, params, box), name="bulk-verify"
        )
        thread.start()
        if dry_run:
            with console.status("planning (nothing is sent)"):
                thread.join()
        else:
            _watch(thread, paths)
        if "error" in box:
            console.print(f"[red]run {run_id} failed: {box['error']!r}")
            raise typer.Exit(1)
        result: dict[str, Any] = box["result"]
        if dry_run:
            console.print("[bold]Dry run: nothing was sent. The plan:")
            for line in result["plan_lines"]:
                console.print(f"  {line}")
            return
        console.print(_summary(result))
        console.print(f"results: {result['results_csv']}\nrejects: {result['rejects_csv']}")
        console.print(f"took {time.monotonic() - started:.1f} s")
        if result.get("not_verified", 0):
            console.print(f"[red]{result['not_verified']} number(s) did not verify (see results)")
            raise typer.Exit(1)
