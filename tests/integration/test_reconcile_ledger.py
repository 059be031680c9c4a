"""The reconciler's view of the ledger, on file SQLite and PostgreSQL: reads and re-queues."""

from __future__ import annotations

from datetime import UTC, datetime

from callerid.ledger import NumberRecord, NumberStatus, open_ledger
from callerid.reconcile.ledger_view import REQUEUE_REASON, load_known, requeue
from callerid.reconcile.models import Action, ActionKind, Category, Outcome

ACCOUNT = "MASANDBOXACCOUNT0001"


def _seed(url: str) -> None:
    now = datetime.now(UTC)
    with open_ledger(url) as ledger, ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(
            ACCOUNT,
            [
                NumberRecord("+14155550001", alias="a", subaccount="SASANDBOXSUBACCT0001"),
                NumberRecord("+14155550002", alias="b"),
            ],
            None,
            now,
        )
        uow.numbers.upsert_many("MAOTHERACCOUNT000001", [NumberRecord("+14155550003")], None, now)
        row = uow.numbers.get(ACCOUNT, "+14155550001")
        assert row is not None
        uow.numbers.transition(row, NumberStatus.VERIFIED, reason="test", run_id=None, now=now)
        uow.commit()


def test_load_known_reads_only_the_account_as_plain_values(db_url: str) -> None:
    _seed(db_url)
    known = {k.phone_number: k for k in load_known(db_url, ACCOUNT)}
    assert set(known) == {"+14155550001", "+14155550002"}
    assert known["+14155550001"].status == "verified"
    assert known["+14155550001"].subaccount == "SASANDBOXSUBACCT0001"
    assert known["+14155550002"].status == "queued" and known["+14155550002"].alias == "b"


def test_requeue_moves_verified_numbers_back_with_an_event_and_refuses_others(db_url: str) -> None:
    _seed(db_url)
    actions = [
        Action(ActionKind.REQUEUE, "+14155550001", reason=Category.LOST),
        Action(ActionKind.REQUEUE, "+14155550002", reason=Category.LOST),  # queued meanwhile
    ]
    results = requeue(db_url, ACCOUNT, actions, run_id="run-1")
    assert [(r.action.phone_number, r.outcome) for r in results] == [
        ("+14155550001", Outcome.DONE),
        ("+14155550002", Outcome.FAILED),
    ]
    assert results[1].error == "ledger status is now queued"
    with open_ledger(db_url) as ledger, ledger.unit_of_work() as uow:
        row = uow.numbers.get(ACCOUNT, "+14155550001")
        assert row is not None and row.status == "queued" and row.last_run_id == "run-1"
        last = uow.events.history(ACCOUNT, "+14155550001")[-1]
        assert (last.from_status, last.to_status, last.reason) == (
            "verified",
            "queued",
            REQUEUE_REASON,
        )
