"""What the ledger believes about an account, and re-queueing lost numbers through it.

Reads turn the account's rows into plain values inside the unit of work. Re-queueing goes
through the ledger's repository (`uow.numbers.transition`), so every re-queue is an event with its
reason and run, like any other transition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from callerid.ledger import open_ledger
from callerid.ledger.models import NumberStatus
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
