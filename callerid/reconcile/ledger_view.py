"""What the ledger believes about an account, and what `apply` writes to it.

Reads turn the account's rows into plain values inside the unit of work. Re-queueing goes
through the ledger's repository (`uow.numbers.transition`), so every re-queue is an event with its
reason and run, like any other transition.

`LedgerSync` writes what `apply` changes on the account (issue 15). The ledger is written first,
in one transaction per chunk with an event per number naming the reconcile run, and the account
is called after: the same intent-first order as `initiating` / `completing`. A crash or an
unanswered request in between leaves the ledger holding the new value and the account the old
one, so the next reconcile, which expects the ledger's values, finishes the change on the
account; it never reverts it. Only an answer that says the account did not change (a 4xx)
restores the ledger's previous values, with an event saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from callerid.ledger import Ledger, NumberRecord, open_ledger
from callerid.ledger.models import Event, Number, NumberStatus
from callerid.ledger.uow import UnitOfWork
from callerid.reconcile.compare import VERIFIED_STATUSES
from callerid.reconcile.models import Action, ActionKind, ActionResult, Known, Outcome

REQUEUE_REASON = "reconcile: verified in the ledger but no longer listed by the account"


def load_known(database_url: str, account: str) -> tuple[Known, ...]:
    with open_ledger(database_url) as ledger, ledger.unit_of_work() as uow:
        return tuple(
            Known(
                phone_number=row.e164,
                status=row.status,
                alias=row.alias,
                subaccount=row.subaccount,
                country=row.country,
            )
            for row in uow.numbers.by_status(account)
        )


def requeue(
    database_url: str, account: str, actions: Sequence[Action], *, run_id: str | None
) -> list[ActionResult]:
    """Lost numbers back to `queued` (attempts reset by the next import's rules)."""
    todo = {a.phone_number: a for a in actions if a.kind is ActionKind.REQUEUE}
    results: list[ActionResult] = []
    if not todo:
        return results
    with open_ledger(database_url) as ledger, ledger.unit_of_work() as uow:
        now = datetime.now(UTC)
        for number, action in todo.items():
            row = uow.numbers.get(account, number)
            if row is None or row.status not in VERIFIED_STATUSES:
                # changed since the comparison (an import verified or re-queued it): leave it
                status = row.status if row else "absent"
                results.append(
                    ActionResult(action, Outcome.FAILED, error=f"ledger status is now {status}")
                )
                continue
            uow.numbers.transition(
                row, NumberStatus.QUEUED, reason=REQUEUE_REASON, run_id=run_id, now=now
            )
            results.append(ActionResult(action, Outcome.DONE))
        uow.commit()
    return results


ADOPT_REASON = "listed by the account and named by the desired state"


@dataclass(frozen=True, slots=True)
class Prior:
    """A row's alias and subaccount before `LedgerSync.write` changed them (None: no row)."""

    alias: str | None
    subaccount: str | None


def _describe(field: str, old: str | None, new: str | None) -> str:
    return f"{field} {old or '(none)'!r} -> {new or '(none)'!r}"


class LedgerSync:
    """The ledger side of one reconcile run's `apply`, on `account`, under `run_id`."""

    def __init__(self, database_url: str, account: str, run_id: str) -> None:
        self.database_url = database_url
        self.account = account
        self.run_id = run_id

    def _open(self) -> Ledger:
        return open_ledger(self.database_url, migrate=False)

    def write(self, actions: Sequence[Action]) -> tuple[dict[str, Prior], list[ActionResult]]:
        """Write what `actions` will change, with an event each; one transaction.

        Returns the previous values of the numbers written (for `restore`) and the actions that
        could not be written (the account is then left alone for them)."""
        priors: dict[str, Prior] = {}
        failed: list[ActionResult] = []
        todo = [a for a in actions if a.kind in (ActionKind.UPDATE, ActionKind.RECORD)]
        if not todo:
            return priors, failed
        with self._open() as ledger, ledger.unit_of_work() as uow:
            now = datetime.now(UTC)
            adopt = [a for a in todo if a.adopt]
            if adopt:
                records = [
                    NumberRecord(a.phone_number, a.ledger_alias, a.ledger_subaccount or None)
                    for a in adopt
                ]
                uow.numbers.upsert_many(self.account, records, self.run_id, now)
            for action in todo:
                row = uow.numbers.get(self.account, action.phone_number)
                if row is None:
                    failed.append(ActionResult(action, Outcome.FAILED, error="not in the ledger"))
                    continue
                priors[action.phone_number] = Prior(row.alias, row.subaccount)
                self._change(uow, row, action, now)
            uow.commit()
        return priors, failed

    def _change(self, uow: UnitOfWork, row: Number, action: Action, now: datetime) -> None:
        fields: dict[str, str | None] = {}
        if action.ledger_alias is not None and action.ledger_alias != row.alias:
            fields["alias"] = action.ledger_alias
        subaccount = action.ledger_subaccount
        if subaccount is not None and (subaccount or None) != row.subaccount:
            fields["subaccount"] = subaccount or None
        if action.adopt and row.status != NumberStatus.ALREADY_VERIFIED.value:
            reason = f"reconcile run {self.run_id}: {ADOPT_REASON}"
            uow.numbers.transition(
                row, NumberStatus.ALREADY_VERIFIED, reason=reason, run_id=self.run_id, now=now
            )
        parts = [_describe(k, getattr(row, k), v) for k, v in fields.items()]
        if action.kind is ActionKind.UPDATE:
            account_side = []
            if action.alias is not None:
                account_side.append(f"alias -> {action.alias!r}")
            if action.subaccount is not None:
                account_side.append(f"subaccount -> {action.subaccount}")
            parts.append("account " + ", ".join(account_side))
        if fields:
            uow.numbers.touch(row, now=now, **fields)
        if parts:
            self._event(uow, row, f"reconcile run {self.run_id}: " + "; ".join(parts), now)

    def _event(self, uow: UnitOfWork, row: Number, reason: str, now: datetime) -> None:
        """An audit event without a status change (from = to = the row's status)."""
        uow.session.flush()
        uow.session.add(
            Event(
                number_id=row.id,
                from_status=row.status,
                to_status=row.status,
                reason=reason,
                run_id=self.run_id,
                at=now,
            )
        )
        row.last_run_id = self.run_id

    def restore(self, refused: Sequence[tuple[Action, Prior, str]]) -> None:
        """The account refused these changes: the ledger takes back its previous values."""
        if not refused:
            return
        with self._open() as ledger, ledger.unit_of_work() as uow:
            now = datetime.now(UTC)
            for action, prior, error in refused:
                row = uow.numbers.get(self.account, action.phone_number)
                if row is None:
                    continue
                fields = {"alias": prior.alias, "subaccount": prior.subaccount}
                changed = {k: v for k, v in fields.items() if getattr(row, k) != v}
                if changed:
                    uow.numbers.touch(row, now=now, **changed)
                reason = (
                    f"reconcile run {self.run_id}: the account refused the change ({error}); "
                    "ledger values restored"
                )
                self._event(uow, row, reason, now)
            uow.commit()

    def requeue(self, actions: Sequence[Action]) -> list[ActionResult]:
        return requeue(self.database_url, self.account, actions, run_id=self.run_id)
