"""`callerid reconcile` and `callerid setup-prefect`.

`reconcile` runs the reconciliation from a terminal: by default directly (no Prefect, no server
start-up), or with `--prefect` as the `reconcile` flow (its artifacts then show in the UI). Exit
status: 0 when nothing failed, 1 when an action failed, 2 for a bad invocation or unusable input.

`setup-prefect` prepares a Prefect server for the deployments: the account's global concurrency
limit (the shared rate bucket), optionally the `plivo-auth-token` Secret block and the work pool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callerid.cli.terminal import console

if TYPE_CHECKING:
    from callerid.reconcile.report import ReconcileReport
    from callerid.reconcile.service import ReconcileOptions
    from callerid.settings import Settings


Subaccount = Annotated[str | None, typer.Option(help="Only this subaccount's caller IDs.")]
Country = Annotated[str | None, typer.Option(help="Only this country (ISO alpha-2).")]
DesiredCsv = Annotated[
    Path | None,
    typer.Option("--desired", exists=True, dir_okay=False, help="Desired state (import format)."),
]


def _require_account(settings: Settings) -> str:
    """The account: the configured one, or (no credentials) the embedded sandbox account."""
    from callerid.reconcile.connect import IncompleteCredentialsError, account_id

    try:
        return account_id(settings)
    except IncompleteCredentialsError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None


async def run_direct(settings: Settings, options: ReconcileOptions) -> ReconcileReport:
    import uuid

    from callerid.reconcile import ledger_view
    from callerid.reconcile.connect import open_account
    from callerid.reconcile.desired import load_desired
    from callerid.reconcile.service import reconcile_account

    account = _require_account(settings)
    url = settings.resolved_database_url()
    desired = None
    if options.desired_csv:
        desired = load_desired(
            options.desired_csv,
            default_region=options.default_region,
            encoding=options.encoding,
            prune=options.prune,
        ).entries
    known = ledger_view.load_known(url, account)
    async with open_account(settings) as client:
        return await reconcile_account(
            client,
            options,
            known=known,
            desired=desired,
            output_dir=settings.output_dir,
            ledger=ledger_view.LedgerSync(url, account, str(uuid.uuid4())),
        )


def _print(report: ReconcileReport) -> None:
    from rich.table import Table

    from callerid.reconcile.models import Outcome

    table = Table(title="Reconcile" + ("" if report.applied else " (dry run: nothing changed)"))
    table.add_column("category")
    table.add_column("numbers", justify="right")
    for name, n in report.counts.items():
        table.add_row(name, str(n))
    console.print(table)
    for r in report.results:
        verb = "would " if r.outcome is Outcome.PLANNED else ""
        tail = f" [red]failed: {r.error}[/red]" if r.outcome is Outcome.FAILED else ""
        console.print(f"  {verb}{r.action.describe()}{tail}", highlight=False)
    console.print(f"Report: {report.csv_path}")


def reconcile(
    subaccount: Subaccount = None,
    country: Country = None,
    desired: DesiredCsv = None,
    apply: Annotated[bool, typer.Option("--apply", help="Change the account.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help="Also delete extras.")] = False,
    requeue_lost: Annotated[
        bool, typer.Option("--requeue-lost", help="Re-queue lost numbers in the ledger.")
    ] = False,
    region: Annotated[str, typer.Option(help="Region for national numbers.")] = "US",
    encoding: Annotated[str | None, typer.Option(help="Encoding of the CSV.")] = None,
    prefect: Annotated[
        bool, typer.Option("--prefect", help="Run as the Prefect flow (artifacts in the UI).")
    ] = False,
) -> None:
    """Compare the account's caller IDs with the ledger (and a desired CSV); dry run by default."""
    from callerid.reconcile.models import Outcome
    from callerid.reconcile.service import ReconcileOptions
    from callerid.settings import load_settings

    options = ReconcileOptions(
        subaccount=subaccount,
        country=country.upper() if country else None,
        desired_csv=str(desired) if desired else None,
        apply=apply,
        prune=prune,
        requeue_lost=requeue_lost,
        default_region=region,
        encoding=encoding,
    )
    settings = load_settings()
    _require_account(settings)
    if prefect:
        _run_flow(options)
        return
    from callerid.ingest import IngestInputError
    from callerid.reconcile.desired import DesiredStateError

    try:
        report = asyncio.run(run_direct(settings, options))
    except (IngestInputError, DesiredStateError) as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    _print(report)
    if any(r.outcome is Outcome.FAILED for r in report.results):
        raise typer.Exit(1)


def _run_flow(options: ReconcileOptions) -> None:
    from callerid.cli.prefect_run import prefect_env_defaults

    prefect_env_defaults()
    from flows.reconcile import reconcile as reconcile_flow

    params: dict[str, Any] = {
        "subaccount": options.subaccount,
        "country": options.country,
        "desired_csv": options.desired_csv,
        "apply": options.apply,
        "prune": options.prune,
        "requeue_lost": options.requeue_lost,
        "default_region": options.default_region,
        "encoding": options.encoding,
    }
    result = asyncio.run(reconcile_flow(**params))
    console.print(result)
    if any(key.endswith(":failed") for key in result["actions"]):
        raise typer.Exit(1)


def setup_prefect(
    store_token: Annotated[
        bool, typer.Option("--store-token", help="Save PLIVO_AUTH_TOKEN as a Secret block.")
    ] = False,
    work_pool: Annotated[
        str | None, typer.Option(help="Also create this process work pool.")
    ] = None,
    notify: Annotated[
        str | None,
        typer.Option(help="Notification block (slug/name) told when a bulk-verify run fails."),
    ] = None,
) -> None:
    """Create the account's global concurrency limit on the Prefect server (PREFECT_API_URL)."""
    from callerid.settings import load_settings
    from tasks.account import ensure_account_limit
    from tasks.account import store_token as save_token

    settings = load_settings()
    if notify:
        import asyncio

        from tasks.people import FAILURE_AUTOMATION, ensure_failure_automation

        automation = asyncio.run(ensure_failure_automation(notify))
        console.print(f"automation '{FAILURE_AUTOMATION}' -> {notify} ({automation})")
        if not settings.plivo_auth_id:  # the limit needs an account; the automation did not
            return
    if not settings.plivo_auth_id:
        console.print("[red]set PLIVO_AUTH_ID: the limit is per account[/red]")
        raise typer.Exit(2)
    shape = ensure_account_limit(
        settings.plivo_auth_id, settings.rate_limit_requests, settings.rate_limit_period_s
    )
    console.print(
        f"global concurrency limit {shape.name}: {shape.limit} slots, "
        f"{shape.slot_decay_per_second:g} slots/s decay "
        f"(account limit {settings.rate_limit_requests}/{settings.rate_limit_period_s:g}s)"
    )
    if store_token:
        if not settings.plivo_auth_token:
            console.print("[red]--store-token: PLIVO_AUTH_TOKEN is not set[/red]")
            raise typer.Exit(2)
        save_token(settings.plivo_auth_token.get_secret_value())
        console.print("Secret block plivo-auth-token saved")
    if work_pool:
        from tasks.account import ensure_process_pool

        console.print(f"work pool {work_pool}: {ensure_process_pool(work_pool)}")


def register(app: typer.Typer) -> None:
    """Add `callerid reconcile` and `callerid setup-prefect` to the top-level app."""
    app.command("reconcile")(reconcile)
    app.command("setup-prefect")(setup_prefect)
