"""Compare the three views of an account and plan the changes: pure functions, no I/O.

Rules, where the issue leaves room:

* a listed number is *known* when the ledger or the desired CSV has it; otherwise it is an extra;
* the expected alias/subaccount is the desired CSV's when it states one, else the ledger's; `None`
  means "no opinion" (the import format leaves both optional, and the API cannot move a number
  back to the main account, since an empty subaccount leaves it unchanged);
* numbers outside the listed scope (another subaccount, another country) are not judged at all;
* a listed number whose ledger row is still pending is reported as verified with its ledger
  status: the account is the truth, the ledger is merely behind;
* what `apply` settles with a desired CSV, the ledger keeps (issue 15): a listed number the CSV
  names gets the expected alias/subaccount in the ledger too (a row of its own if it had none),
  also when the account already had them. Otherwise the next reconcile without `--desired`, which
  expects the ledger's values, would undo on the account what the CSV asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TypeVar

from callerid.ledger.models import NumberStatus
from callerid.reconcile.models import (
    Action,
    ActionKind,
    Category,
    Desired,
    Finding,
    Known,
    Listed,
    Scope,
)

VERIFIED_STATUSES = frozenset({NumberStatus.VERIFIED.value, NumberStatus.ALREADY_VERIFIED.value})
FAILED_STATUSES = frozenset({NumberStatus.FAILED.value})


T = TypeVar("T", Listed, Known, Desired)


def _by_number(items: Iterable[T]) -> dict[str, T]:
    out: dict[str, T] = {}
    for item in items:
        out.setdefault(item.phone_number, item)  # the first row wins, as in the import
    return out


def _expected(desired: str | None, known: str | None) -> str | None:
    return desired if desired is not None else known


def compare(
    listed: Iterable[Listed],
    known: Iterable[Known],
    desired: Iterable[Desired] | None = None,
    scope: Scope | None = None,
) -> tuple[Finding, ...]:
    """One finding per number and category, ordered by number then category."""
    listed_by = _by_number(listed)
    known_by = _by_number(
        k for k in known if scope is None or scope.covers(k.subaccount, k.country)
    )
    desired_by = _by_number(
        d for d in desired or () if scope is None or scope.covers(d.subaccount, d.country)
    )
    findings: list[Finding] = []
    for number in sorted(listed_by.keys() | known_by.keys() | desired_by.keys()):
        findings.extend(
            _judge(number, listed_by.get(number), known_by.get(number), desired_by.get(number))
        )
    return tuple(findings)


def _judge(
    number: str, listed: Listed | None, known: Known | None, desired: Desired | None
) -> list[Finding]:
    status = known.status if known else None
    alias = _expected(desired.alias if desired else None, known.alias if known else None)
    subaccount = _expected(
        desired.subaccount if desired else None, known.subaccount if known else None
    )
    base = Finding(
        phone_number=number,
        category=Category.VERIFIED,
        listed_alias=listed.alias if listed else None,
        expected_alias=alias,
        listed_subaccount=listed.subaccount if listed else None,
        expected_subaccount=subaccount,
        ledger_status=status,
    )
    if listed is None:
        if status in VERIFIED_STATUSES:
            return [_with(base, Category.LOST)]
        if status in FAILED_STATUSES:
            return [_with(base, Category.FAILED)]
        if status is not None:
            return [_with(base, Category.PENDING)]
        return [_with(base, Category.MISSING)]
    if known is None and desired is None:
        return [_with(base, Category.EXTRA)]
    if desired is not None and _ledger_behind(known, desired):
        base = replace(base, ledger_behind=True)
    drifts = []
    if alias is not None and alias != listed.alias:
        drifts.append(_with(base, Category.ALIAS_DRIFT))
    if subaccount is not None and subaccount != listed.subaccount:
        drifts.append(_with(base, Category.SUBACCOUNT_DRIFT))
    return drifts or [base]


def _ledger_behind(known: Known | None, desired: Desired) -> bool:
    if known is None:
        return True
    if desired.alias is not None and desired.alias != known.alias:
        return True
    return desired.subaccount is not None and desired.subaccount != known.subaccount


def _with(finding: Finding, category: Category) -> Finding:
    return replace(finding, category=category)


def plan(
    findings: Iterable[Finding], *, prune: bool = False, requeue_lost: bool = False
) -> tuple[Action, ...]:
    """What `apply` changes: drift is always planned; deletes and re-queues only when asked.

    Both drifts of one number become one update request carrying both fields. A number whose
    ledger is behind the desired CSV has the expected values written to the ledger: with its
    update when it drifts, else by a ledger-only `record`.
    """
    targets: dict[str, tuple[str | None, str | None, Category]] = {}
    behind: dict[str, Finding] = {}
    others: list[Action] = []
    for f in findings:
        if f.ledger_behind:
            behind.setdefault(f.phone_number, f)
        if f.category is Category.ALIAS_DRIFT or f.category is Category.SUBACCOUNT_DRIFT:
            alias, subaccount, reason = targets.get(f.phone_number, (None, None, f.category))
            if f.category is Category.ALIAS_DRIFT:
                alias = f.expected_alias
            else:
                subaccount = f.expected_subaccount
            targets[f.phone_number] = (alias, subaccount, reason)
        elif f.category is Category.EXTRA and prune:
            others.append(Action(ActionKind.DELETE, f.phone_number, reason=f.category))
        elif f.category is Category.LOST and requeue_lost:
            others.append(Action(ActionKind.REQUEUE, f.phone_number, reason=f.category))
    updates = [
        _to_ledger(
            Action(ActionKind.UPDATE, number, alias=alias, subaccount=subaccount, reason=reason),
            behind.get(number),
        )
        for number, (alias, subaccount, reason) in targets.items()
    ]
    records = [
        _to_ledger(Action(ActionKind.RECORD, number, reason=f.category), f)
        for number, f in behind.items()
        if number not in targets
    ]
    return (*updates, *records, *others)


def _to_ledger(action: Action, finding: Finding | None) -> Action:
    """`action` also writes the finding's expected values to the ledger, if it is behind."""
    if finding is None:
        return action
    adopt = finding.ledger_status is None
    alias, subaccount = finding.expected_alias, finding.expected_subaccount
    if adopt:  # a new row takes what the account lists where the CSV has no opinion
        alias = alias if alias is not None else finding.listed_alias
        subaccount = subaccount if subaccount is not None else finding.listed_subaccount
    return replace(action, ledger_alias=alias, ledger_subaccount=subaccount, adopt=adopt)


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per category, every category present (zeros included), in enum order."""
    out = {c.value: 0 for c in Category}
    for f in findings:
        out[f.category.value] += 1
    return out
