"""`reconcile`: the account's verified caller IDs against the ledger and an optional desired CSV.

    ledger + desired CSV -> list the account (all pages, shared limiter) -> compare and plan
    -> dry run: report the plan | apply: the ledger first, then update/delete on the account
       (each change an event naming this run), re-queue in the ledger
    -> report CSV + `reconcile-summary` and `reconcile-attention` artifacts

Scheduled nightly by the `reconcile-nightly` deployment; `callerid reconcile` runs the same steps
without Prefect. This module only sequences: each step is a task over `callerid.reconcile`.
"""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from callerid.reconcile.service import ReconcileOptions
from tasks.account import account_settings
from tasks.reconcile import (
    apply_task,
    compare_task,
    list_task,
    load_desired_task,
    load_known_task,
    planned_results,
    report_task,
    require_account,
)


@flow(name="reconcile", log_prints=False, validate_parameters=True)
async def reconcile(
    subaccount: str | None = None,
    country: str | None = None,
    desired_csv: str | None = None,
    apply: bool = False,
    prune: bool = False,
    requeue_lost: bool = False,
    default_region: str = "US",
    encoding: str | None = None,
) -> dict[str, Any]:
    """Compare, then (with `apply`) fix aliases and subaccounts; `prune` also deletes extras;
    `requeue_lost` puts lost numbers back in the queue. Without `apply` nothing changes."""
    logger = get_run_logger()
    run_id = str(flow_run.get_id() or uuid.uuid4())
    options = ReconcileOptions(
        subaccount=subaccount,
        country=country,
        desired_csv=desired_csv,
        apply=apply,
        prune=prune,
        requeue_lost=requeue_lost,
        default_region=default_region,
        encoding=encoding,
    )
    settings = account_settings()
    account = require_account(settings)
    scope = options.scope(account)
    database_url = settings.resolved_database_url()
    desired = load_desired_task(options).entries if desired_csv else None
    known = load_known_task(database_url, account)
    listed = await list_task(scope, known)
    findings, actions = compare_task(listed, known, desired, scope, options)
    if apply:
        results = await apply_task(actions, database_url, account, run_id)
    else:
        results = planned_results(actions)
    report = await report_task(scope, findings, results, apply, settings.output_dir)
    logger.warning("reconcile %s: %s (report %s)", account, report.counts, report.csv_path)
    return {
        "account": account,
        "applied": apply,
        "counts": report.counts,
        "actions": report.outcome_counts(),
        "report_csv": str(report.csv_path),
    }
