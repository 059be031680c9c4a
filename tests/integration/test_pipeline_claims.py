"""Two runs of one account share an inbox: a code is claimed (and submitted) by one run only.

This is the sequential case. The interleaved one (both read before either commits) is what
`claim_matched` guards with its status re-check and conflict handling; the two-worker deploy test
(tests/deploy) exercises it for real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from callerid.inbox.manual import submit_code
from callerid.ledger import NumberStatus, open_ledger
from callerid.pipeline.ledger_ops import claim_matched

ACCOUNT = "MAXXXXXXXXXXXXXXXXXX"
NUMBER = "+14155550123"


def test_a_code_is_claimed_by_one_run_and_skipped_by_the_other(db_url: str) -> None:
    now = datetime.now(UTC)
    with open_ledger(db_url) as ledger:
        with ledger.unit_of_work() as uow:
            uow.numbers.upsert_many(ACCOUNT, [{"e164": NUMBER}], "run-a", now)
            (row,) = uow.numbers.claim(
                ACCOUNT, [NumberStatus.QUEUED], NumberStatus.INITIATING, 1, now, "run-a", "t"
            )
            uow.numbers.transition(
                row,
                NumberStatus.INITIATED,
                reason="initiated",
                run_id="run-a",
                now=now,
                verification_uuid="uuid-1",
                initiated_at=now,
                expires_at=now + timedelta(minutes=15),
            )
            submit_code(uow.session, ACCOUNT, NUMBER, "4321", now=now + timedelta(seconds=5))
            uow.commit()
        run_a = SimpleNamespace(ledger=ledger, account=ACCOUNT, run_id="run-a")
        run_b = SimpleNamespace(ledger=ledger, account=ACCOUNT, run_id="run-b")
        later = now + timedelta(seconds=10)
        first = claim_matched(run_a, later)  # type: ignore[arg-type]
        second = claim_matched(run_b, later)  # type: ignore[arg-type]
        assert [(c.e164, c.verification_uuid) for c in first] == [(NUMBER, "uuid-1")]
        assert second == []
        with ledger.unit_of_work() as uow:
            stored = uow.numbers.get(ACCOUNT, NUMBER)
            assert stored is not None and stored.status == NumberStatus.COMPLETING.value
            assert stored.last_run_id == "run-a"
