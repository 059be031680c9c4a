"""One reconciliation, start to finish, as plain async steps (the flow runs them as tasks).

list the account (+ GET the numbers a scoped list could hide) -> compare with the ledger and
the desired CSV -> plan -> dry run: report the plan | apply: per chunk, write the ledger, then
update/delete on the account (restoring the ledger where the account refused), re-queue -> report

What the ledger holds afterwards, by mode:
* dry run: nothing is written (the report says what apply would do);
* apply without a desired CSV: the account follows the ledger; the ledger keeps its values and
  gets an event per number changed on the account, naming the reconcile run;
* apply with a desired CSV: the ledger also takes the desired alias/subaccount of every listed
  number the CSV names (a listed number it lacked becomes `already_verified`), each with an event;
* prune: extras (numbers the ledger does not have) leave the account; the ledger is unchanged;
* requeue-lost: lost numbers go back to `queued` in the ledger, with an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from callerid.plivo import PlivoClient
from callerid.reconcile.account import apply_to_account, list_account, still_listed
from callerid.reconcile.compare import VERIFIED_STATUSES, compare, plan
from callerid.reconcile.ledger_view import LedgerSync, Prior
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

CHUNK = 500  # actions per ledger transaction


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
    client: PlivoClient, actions: Sequence[Action], ledger: LedgerSync | None
) -> list[ActionResult]:
    """Apply the plan: per chunk, the ledger first, then the account (see ledger_view)."""
    results: list[ActionResult] = []
    account_side = [a for a in actions if a.kind in (ActionKind.UPDATE, ActionKind.DELETE)]
    records = [a for a in actions if a.kind is ActionKind.RECORD]
    for start in range(0, len(account_side), CHUNK):
        results.extend(await _chunk(client, account_side[start : start + CHUNK], ledger))
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        if ledger is None:
            results.extend(_without_ledger(chunk))
            continue
        priors, failed = ledger.write(chunk)
        results.extend(failed)
        results.extend(ActionResult(a, Outcome.DONE) for a in chunk if a.phone_number in priors)
    requeues = [a for a in actions if a.kind is ActionKind.REQUEUE]
    if requeues:
        results.extend(ledger.requeue(requeues) if ledger else _without_ledger(requeues))
    return results


def _without_ledger(actions: Sequence[Action]) -> list[ActionResult]:
    return [ActionResult(a, Outcome.FAILED, error="needs the ledger") for a in actions]


async def _chunk(
    client: PlivoClient, actions: Sequence[Action], ledger: LedgerSync | None
) -> list[ActionResult]:
    priors: dict[str, Prior] = {}
    failed: list[ActionResult] = []
    if ledger is not None:
        priors, failed = ledger.write(actions)
    skipped = {r.action.phone_number for r in failed}
    done = await apply_to_account(client, [a for a in actions if a.phone_number not in skipped])
    if ledger is not None:
        ledger.restore(
            [
                (r.action, priors[r.action.phone_number], r.error or "")
                for r in done
                if r.outcome is Outcome.FAILED
                and r.refused
                and r.action.phone_number in priors
                and r.action.writes_ledger
            ]
        )
    return [*failed, *done]


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
    ledger: LedgerSync | None = None,
) -> ReconcileReport:
    """`ledger`: where `apply` writes what it changes (None: the account alone; ledger-only
    actions then fail with "needs the ledger")."""
    scope = options.scope(client.auth_id)
    listed = await list_with_confirmation(client, scope, known)
    findings = compare(listed, known, desired, scope)
    actions = plan(findings, prune=options.prune, requeue_lost=options.requeue_lost)
    if options.apply:
        results = await carry_out(client, actions, ledger)
    else:
        results = planned(actions)
    return finish(scope, findings, results, applied=options.apply, output_dir=output_dir)
