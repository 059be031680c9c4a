"""One reconciliation, start to finish, as plain async steps (the flow runs them as tasks).

list the account (+ GET the numbers a scoped list could hide) -> compare with the ledger and
the desired CSV -> plan -> dry run: report the plan | apply: update/delete, re-queue -> report
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from callerid.plivo import PlivoClient
from callerid.reconcile.account import apply_to_account, list_account, still_listed
from callerid.reconcile.compare import VERIFIED_STATUSES, compare, plan
from callerid.reconcile.models import (
    Action,
    ActionKind,
    ActionResult,
    Desired,
    Finding,
    Known,
    Listed,
    Outcome,
    Scope,
)
from callerid.reconcile.report import ReconcileReport, build_report, write_csv

Requeue = Callable[[Sequence[Action]], list[ActionResult]]


@dataclass(frozen=True, slots=True)
class ReconcileOptions:
    subaccount: str | None = None
    country: str | None = None
    desired_csv: str | None = None
    apply: bool = False  # False: a dry run that reports exactly what would change
    prune: bool = False  # delete extras (only with this flag)
    requeue_lost: bool = False  # put lost numbers back to `queued` in the ledger
    default_region: str = "US"
    encoding: str | None = None

    def scope(self, account: str) -> Scope:
        return Scope(account=account, subaccount=self.subaccount, country=self.country)


def lost_candidates(
    listed: Iterable[Listed], known: Iterable[Known], scope: Scope
) -> tuple[str, ...]:
    """Ledger-verified numbers in scope that the list did not show."""
    shown = {item.phone_number for item in listed}
    return tuple(
        sorted(
            k.phone_number
            for k in known
            if k.status in VERIFIED_STATUSES
            and k.phone_number not in shown
            and scope.covers(k.subaccount, k.country)
        )
    )


async def list_with_confirmation(
    client: PlivoClient, scope: Scope, known: Sequence[Known]
) -> tuple[Listed, ...]:
    """The scoped list, plus the would-be-lost numbers a GET still finds (moved out of scope)."""
    listed = await list_account(client, scope)
    if not scope.is_partial:
        return listed
    found = await still_listed(client, lost_candidates(listed, known, scope))
    return (*listed, *found.values())


def planned(actions: Iterable[Action]) -> list[ActionResult]:
    return [ActionResult(action, Outcome.PLANNED) for action in actions]


async def carry_out(
    client: PlivoClient, actions: Sequence[Action], requeue: Requeue | None
) -> list[ActionResult]:
    results = await apply_to_account(client, actions)
    requeues = [a for a in actions if a.kind is ActionKind.REQUEUE]
    if requeues:
        if requeue is None:
            raise ValueError("re-queueing lost numbers needs the ledger")
        results.extend(requeue(requeues))
    return results


def report_path(output_dir: Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return output_dir / "reconcile" / f"reconcile-{stamp}.csv"


def finish(
    scope: Scope,
    findings: Sequence[Finding],
    results: Sequence[ActionResult],
    *,
    applied: bool,
    output_dir: Path,
) -> ReconcileReport:
    report = build_report(scope, findings, results, applied=applied)
    path = write_csv(report, report_path(output_dir))
    return report.with_csv(path)


async def reconcile_account(
    client: PlivoClient,
    options: ReconcileOptions,
    *,
    known: Sequence[Known],
    desired: Sequence[Desired] | None,
    output_dir: Path,
    requeue: Requeue | None = None,
) -> ReconcileReport:
    scope = options.scope(client.auth_id)
    listed = await list_with_confirmation(client, scope, known)
    findings = compare(listed, known, desired, scope)
    actions = plan(findings, prune=options.prune, requeue_lost=options.requeue_lost)
    if options.apply:
        results = await carry_out(client, actions, requeue)
    else:
        results = planned(actions)
    return finish(scope, findings, results, applied=options.apply, output_dir=output_dir)
