"""The ledger: durable per-number state (SQLAlchemy 2.0; SQLite by default, PostgreSQL to share).

    ledger = open_ledger()                      # CALLERID_DATABASE_URL, else out/ledger.sqlite3
    with ledger.unit_of_work() as uow:
        uow.numbers.upsert_many(account, rows, run_id, now)
        uow.commit()
    with ledger.unit_of_work() as uow:          # the intent row is committed before the API call
        claimed = uow.numbers.claim(account, [NumberStatus.QUEUED], NumberStatus.INITIATING,
                                    200, now, run_id, "initiate")
        uow.commit()

The state machine lives in `states` (ALLOWED, attempt counting); `NumberRepository.transition` is
the one place a status changes; recovery after a crash is `recover_interrupted`.
"""

from callerid.ledger.errors import (
    ConcurrentUpdateError,
    IllegalTransitionError,
    InvalidRecordError,
    LedgerError,
    RunNotFoundError,
)
from callerid.ledger.events import EventRepository
from callerid.ledger.ledger import Ledger, open_ledger, resolve_url
from callerid.ledger.models import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    Event,
    InboxMessage,
    InboxStatus,
    Number,
    NumberStatus,
    Run,
)
from callerid.ledger.numbers import NumberRepository
from callerid.ledger.recovery import recover_interrupted, recover_interrupted_async
from callerid.ledger.runs import RunRepository
from callerid.ledger.states import ALLOWED, OTP_WINDOW
from callerid.ledger.uow import UnitOfWork
from callerid.ledger.upsert import NumberRecord, UpsertResult

__all__ = [
    "ALLOWED",
    "FINAL_STATUSES",
    "LIVE_STATUSES",
    "OTP_WINDOW",
    "ConcurrentUpdateError",
    "Event",
    "EventRepository",
    "IllegalTransitionError",
    "InboxMessage",
    "InboxStatus",
    "InvalidRecordError",
    "Ledger",
    "LedgerError",
    "Number",
    "NumberRecord",
    "NumberRepository",
    "NumberStatus",
    "Run",
    "RunNotFoundError",
    "RunRepository",
    "UnitOfWork",
    "UpsertResult",
    "open_ledger",
    "recover_interrupted",
    "recover_interrupted_async",
    "resolve_url",
]
