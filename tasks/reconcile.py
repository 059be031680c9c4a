"""Thin Prefect tasks over `callerid.reconcile`: one task per step, never one per number.

Each task that talks to Plivo reads the credentials itself (environment, else the Secret block:
they never travel as task parameters) and opens its own client on the account's shared limiter
(the GCL-fed one under a Prefect server). With no credentials at all, the account is the embedded
sandbox account (its state file under the output folder), served in the task's process. Caching
is off: every reconcile looks afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from callerid.plivo import PlivoClient
from callerid.reconcile import ledger_view
from callerid.reconcile.compare import compare, plan
from callerid.reconcile.connect import account_id, open_account
from callerid.reconcile.desired import DesiredState, load_desired
from callerid.reconcile.models import Action, ActionResult, Desired, Finding, Known, Listed, Scope
from callerid.reconcile.report import ReconcileReport, attention_table, summary_markdown
from callerid.reconcile.service import (
    ReconcileOptions,
    carry_out,
    finish,
    list_with_confirmation,
    planned,
)
from callerid.settings import Settings
from tasks.account import account_limiter, account_settings

SUMMARY_KEY = "reconcile-summary"
ATTENTION_KEY = "reconcile-attention"


def require_account(settings: Settings) -> str:
    """The account's auth id: the configured one, or with no credentials at all the embedded
    sandbox account (the one `callerid run` and the bulk-import deployment verify into)."""
    return account_id(settings)


def open_client(settings: Settings) -> AbstractAsyncContextManager[PlivoClient]:
    """A client of the account on its shared limiter (the embedded sandbox's is in-process)."""
    limiter = None if settings.uses_sandbox else account_limiter(settings)
    return open_account(settings, limiter)


@task(name="reconcile-load-ledger", cache_policy=NO_CACHE, persist_result=False)
def load_known_task(database_url: str, account: str) -> tuple[Known, ...]:
    return ledger_view.load_known(database_url, account)


@task(name="reconcile-load-desired", cache_policy=NO_CACHE, persist_result=False)
def load_desired_task(options: ReconcileOptions) -> DesiredState:
    assert options.desired_csv is not None
    return load_desired(
        options.desired_csv,
        default_region=options.default_region,
        encoding=options.encoding,
        prune=options.prune,
    )


@task(name="reconcile-list-account", cache_policy=NO_CACHE, persist_result=False)
async def list_task(scope: Scope, known: Sequence[Known]) -> tuple[Listed, ...]:
    async with open_client(account_settings()) as client:
        return await list_with_confirmation(client, scope, known)


@task(name="reconcile-compare", cache_policy=NO_CACHE, persist_result=False)
def compare_task(
    listed: Sequence[Listed],
    known: Sequence[Known],
    desired: Sequence[Desired] | None,
    scope: Scope,
    options: ReconcileOptions,
) -> tuple[tuple[Finding, ...], tuple[Action, ...]]:
    findings = compare(listed, known, desired, scope)
    return findings, plan(findings, prune=options.prune, requeue_lost=options.requeue_lost)


@task(name="reconcile-apply", cache_policy=NO_CACHE, persist_result=False)
async def apply_task(
    actions: Sequence[Action], database_url: str, account: str, run_id: str
) -> list[ActionResult]:
    """The account and the ledger together: the ledger first, in chunks (ledger_view)."""
    ledger = ledger_view.LedgerSync(database_url, account, run_id)
    async with open_client(account_settings()) as client:
        return await carry_out(client, actions, ledger)


def planned_results(actions: Sequence[Action]) -> list[ActionResult]:
    return planned(actions)


@task(name="reconcile-report", cache_policy=NO_CACHE, persist_result=False)
async def report_task(
    scope: Scope,
    findings: Sequence[Finding],
    results: Sequence[ActionResult],
    applied: bool,
    output_dir: Path,
) -> ReconcileReport:
    """The CSV (complete) and two artifacts: a summary and the rows that need attention."""
    report = finish(scope, findings, results, applied=applied, output_dir=output_dir)
    await acreate_markdown_artifact(
        summary_markdown(report), key=SUMMARY_KEY, description="Reconcile summary"
    )
    table = attention_table(report)
    shown = len(table)
    total = sum(n for name, n in report.counts.items() if name != "verified")
    await acreate_table_artifact(
        table or [{"phone_number": "", "category": "", "action": "nothing needs attention"}],
        key=ATTENTION_KEY,
        description=f"Numbers that need attention ({shown} of {total} shown; all in the CSV)",
    )
    return report
