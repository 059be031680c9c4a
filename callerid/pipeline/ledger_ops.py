"""Every ledger write the pipeline makes, in one place (the reads are in `ledger_reads` and are
re-exported here, so the steps have one module to call).

Writes go through the ledger's repository (`uow.numbers`), which records an event for every
transition and checks each move against the state machine.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from callerid.inbox import store
from callerid.inbox.matcher import match_new_messages, settle_used_copies
from callerid.inbox.models import MatchedCode, as_utc
from callerid.ledger import OTP_WINDOW, ConcurrentUpdateError, recover_interrupted, states
from callerid.ledger.models import FINAL_STATUSES, Number, NumberStatus
from callerid.ledger.snapshot import begin_snapshot, is_serialization_failure
from callerid.pipeline.ledger_reads import (
    LIVE,
    outcomes,
    rows_of,
    statuses,
    verified_but_unlisted,
    verified_numbers,
    waiting_for_person,
    work,
)
from callerid.pipeline.outcome import Outcome
from callerid.pipeline.session import Pipeline

if TYPE_CHECKING:
    from callerid.ingest import IngestResult

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
_CONFLICT_RETRIES = 3

__all__ = [
    "MatchedCode",
    "Target",
    "outcomes",
    "statuses",
    "verified_but_unlisted",
    "verified_numbers",
    "waiting_for_person",
    "work",
]


def _retry_on_conflict(fn: Callable[P, R]) -> Callable[P, R]:
    """Redo a ledger write (fresh rows, fresh unit of work) when another process changed one of
    its rows between read and commit: the rows are re-read and re-checked each time. In a
    snapshot (PostgreSQL) that conflict is a serialization failure."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, _CONFLICT_RETRIES + 1):
            try:
                return fn(*args, **kwargs)
            except (ConcurrentUpdateError, StaleDataError, DBAPIError) as exc:
                if isinstance(exc, DBAPIError) and not is_serialization_failure(exc):
                    raise
                if attempt == _CONFLICT_RETRIES:
                    raise
                log.info("%s: a row changed under us; retrying", fn.__name__)
        raise AssertionError("unreachable")

    return wrapper


@dataclass(frozen=True, slots=True)
class Target:
    """A claimed number, as plain values (the ORM row does not outlive its session)."""

    e164: str
    alias: str | None
    channel: str
    subaccount: str | None
    attempts: int


# -- registration ----------------------------------------------------------------------


def register(pipeline: Pipeline, ingest: IngestResult) -> int:
    """Upsert accepted rows; start the run's record. Known numbers keep their status."""
    now = pipeline.clock.now()
    pipeline.e164s = list(dict.fromkeys(row.e164 for row in ingest.accepted))
    with pipeline.ledger.unit_of_work() as uow:
        uow.runs.start_run(
            pipeline.run_id,
            pipeline.account,
            input_path=pipeline.csv_path,
            parameters={"max_attempts": pipeline.options.max_attempts},
            now=now,
        )
        uow.numbers.upsert_many(pipeline.account, ingest.accepted, pipeline.run_id, now)
        uow.commit()
    return len(pipeline.e164s)


# -- initiation ----------------------------------------------------------------------------------


def _still(row: Number, expected: NumberStatus, outcome: NumberStatus) -> bool:
    """Is `row` still where this step left it before its API call?

    It may not be when the call outlasted the OTP window (a long hang, or a test moving the clock
    15 minutes): the supervisor's expiry/recovery has then settled the row already, and an OTP
    sent by this call has expired too. A verification that went through is still recorded (the
    state machine allows `verified` from anywhere); any other late outcome is dropped.
    """
    if row.status == expected.value:
        return True
    keep = outcome is NumberStatus.VERIFIED and states.is_allowed(row.status, outcome)
    log.warning(
        "%s moved to %s while its API call was in flight; %s",
        row.e164,
        row.status,
        "recording the verification" if keep else f"late outcome {outcome.value} dropped",
    )
    return keep


def claim_for_initiate(
    pipeline: Pipeline, limit: int, now: datetime, send_window: timedelta = timedelta(0)
) -> list[Target]:
    """Move up to `limit` queued numbers to `initiating` and commit, before any API call; their
    requests go out within `send_window` of `now` or not at all."""
    with pipeline.ledger.unit_of_work() as uow:
        rows = uow.numbers.claim(
            pipeline.account,
            [NumberStatus.QUEUED],
            NumberStatus.INITIATING,
            limit,
            now,
            pipeline.run_id,
            "initiate",
            send_window=send_window,
        )
        # The claim stamps initiated_at / expires_at: from its commit on, a crash waits a window
        # (counted from the end of the send window: a request may go out that late).
        targets = [Target(r.e164, r.alias, r.channel, r.subaccount, r.attempts) for r in rows]
        uow.commit()
    return targets


@_retry_on_conflict
def record_initiations(
    pipeline: Pipeline, results: Sequence[Outcome], claimed_at: datetime
) -> None:
    """Write the batch's outcomes. An initiated number's window is its own: from when it was
    asked for (messages older than that are stale) to its answer + the OTP window (Plivo started
    the window before the answer came back, so our expiry is never earlier than Plivo's)."""
    now = pipeline.clock.now()
    with pipeline.ledger.unit_of_work() as uow:
        rows = {
            r.e164: r for r in rows_of(uow.session, pipeline.account, [o.e164 for o in results])
        }
        for outcome in results:
            row = rows[outcome.e164]
            if not _still(row, NumberStatus.INITIATING, outcome.status):
                continue
            if outcome.status is NumberStatus.INITIATING:
                # Outcome unknown: restamp, so recovery waits out a window from after the send.
                ends = max(as_utc(row.expires_at or now), now + OTP_WINDOW)
                uow.numbers.touch(row, now=now, last_error=outcome.reason, expires_at=ends)
                continue
            fields: dict[str, Any] = {}
            if outcome.status is NumberStatus.INITIATED:
                fields = {
                    "verification_uuid": outcome.verification_uuid,
                    "initiated_at": outcome.asked_at or claimed_at,
                    "expires_at": (outcome.answered_at or now) + OTP_WINDOW,
                    "wrong_otps": 0,
                    "last_error": None,
                }
            elif outcome.status is not NumberStatus.ALREADY_VERIFIED:
                fields = {"last_error": outcome.reason}
            uow.numbers.transition(
                row,
                outcome.status,
                reason=outcome.reason,
                run_id=pipeline.run_id,
                now=now,
                **fields,
            )
        uow.commit()


# -- completion ----------------------------------------------------------------------------------


def claim_matched(pipeline: Pipeline, now: datetime) -> list[MatchedCode]:
    """Match new inbox messages to live verifications; mark those numbers `completing`.

    Two runs of one account see the same inbox: a number another run has just claimed is
    skipped, and if the other run's claim lands between our read and our commit, this round
    claims nothing (the codes stay `new`; the next round tries again).
    """
    try:
        with pipeline.ledger.unit_of_work() as uow:
            codes = match_new_messages(uow, pipeline.account, now)
            wanted = [c.e164 for c in codes]
            rows = {r.e164: r for r in rows_of(uow.session, pipeline.account, wanted)}
            claimed = [c for c in codes if rows[c.e164].status == NumberStatus.INITIATED.value]
            for code in claimed:
                uow.numbers.transition(
                    rows[code.e164],
                    NumberStatus.COMPLETING,
                    reason="code received",
                    run_id=pipeline.run_id,
                    now=now,
                )
            uow.commit()
    except (ConcurrentUpdateError, StaleDataError, DBAPIError) as exc:
        if isinstance(exc, DBAPIError) and not is_serialization_failure(exc):
            raise
        log.info("another run claimed some of these codes first; next round")
        return []
    return claimed


@_retry_on_conflict
def record_completions(
    pipeline: Pipeline, codes: Sequence[MatchedCode], results: Sequence[Outcome]
) -> None:
    now = pipeline.clock.now()
    run_id = pipeline.run_id
    used: dict[str, str] = {}  # number -> the code that verified it
    with pipeline.ledger.unit_of_work() as uow:
        # One snapshot (write lock at once on SQLite): the copies of the used codes are decided
        # from the inbox and the numbers as of one moment, and a message a person changed
        # meanwhile is not overwritten (PostgreSQL: a serialization failure, retried).
        begin_snapshot(uow.session, write=True)
        rows = {r.e164: r for r in rows_of(uow.session, pipeline.account, [c.e164 for c in codes])}
        # The batch's messages in one query (else a query, and the autoflush of the rows changed
        # so far, per code); the changes go out in the commit's one flush. Held here: the
        # session keeps unchanged rows only weakly, and mark_used would load them again.
        messages = store.load_rows(uow.session, [c.message_id for c in codes])
        for code, outcome in zip(codes, results, strict=True):
            row = rows[code.e164]
            if outcome.message_used:
                # With the code: the message keeps its fingerprint (`store.retire`).
                if outcome.status is NumberStatus.VERIFIED:
                    store.mark_used(uow.session, code.message_id, code.e164, code.code)
                    used[code.e164] = code.code
                else:
                    store.mark_rejected(
                        uow.session, code.message_id, outcome.reason, code.e164, code.code
                    )
            if not _still(row, NumberStatus.COMPLETING, outcome.status):
                continue
            fields: dict[str, Any] = {}
            if outcome.wrong_otp:
                fields["wrong_otps"] = row.wrong_otps + 1
            if outcome.status is NumberStatus.EXPIRED:
                uow.numbers.transition(
                    row,
                    NumberStatus.EXPIRED,
                    reason=outcome.reason,
                    run_id=run_id,
                    now=now,
                    last_error=outcome.reason,
                )
                uow.numbers.settle_expired(
                    row, now=now, run_id=run_id, max_attempts=pipeline.options.max_attempts
                )
                continue
            if outcome.status is not NumberStatus.VERIFIED:
                fields["last_error"] = outcome.reason
            uow.numbers.transition(
                row, outcome.status, reason=outcome.reason, run_id=run_id, now=now, **fields
            )
        # Other copies of a code that verified its number (one message per number per pass:
        # they would stay `new`, readable, after the run): used too, in this transaction.
        settle_used_copies(uow.session, pipeline.account, used, now)
        uow.commit()
        del messages  # held until here (see above)


# -- expiry, listing, recovery -------------------------------------------------------------------


@_retry_on_conflict
def expire_and_recover(
    pipeline: Pipeline, decision_now: datetime, busy: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Expire what missed its window (re-queue or fail by attempts left) and resolve crash
    leftovers untouched since `decision_now` (a `completing` one goes back to `initiated`, so
    its waiting code is submitted again), in one unit of work. `busy`: numbers this process is
    completing right now (not leftovers, however long their call takes)."""
    listed = pipeline.listed or set()
    max_attempts = pipeline.options.max_attempts
    with pipeline.ledger.unit_of_work() as uow:
        counts = recover_interrupted(
            uow,
            pipeline.account,
            decision_now,
            lambda e164: e164 in listed,
            pipeline.run_id,
            max_attempts=max_attempts,
            skip=busy,
        )
        expired = uow.numbers.expire_due(
            pipeline.account, decision_now, pipeline.run_id, max_attempts
        )
        uow.commit()
        for row in expired:
            counts[row.status] = counts.get(row.status, 0) + 1
    return counts


@_retry_on_conflict
def recover(pipeline: Pipeline, listed: set[str], decision_now: datetime) -> dict[str, int]:
    with pipeline.ledger.unit_of_work() as uow:
        counts = recover_interrupted(
            uow,
            pipeline.account,
            decision_now,
            lambda e164: e164 in listed,
            pipeline.run_id,
            max_attempts=pipeline.options.max_attempts,
        )
        uow.commit()
    return counts


@_retry_on_conflict
def mark_listed(pipeline: Pipeline, listed: set[str]) -> dict[str, int]:
    """This run's numbers the account lists: `verified` if we had a verification going for
    them (it went through), else `already_verified`."""
    now = pipeline.clock.now()
    counts: Counter[str] = Counter()
    wanted = [e for e in pipeline.e164s if e in listed]
    settled = [s for s in FINAL_STATUSES if s != NumberStatus.FAILED]
    with pipeline.ledger.unit_of_work() as uow:
        # the settled ones are left in the database (at a large run's end: nearly all of them)
        for row in rows_of(uow.session, pipeline.account, wanted, not_in=settled):
            if row.status in FINAL_STATUSES and row.status != NumberStatus.FAILED:
                continue
            ours = row.status in {s.value for s in LIVE} or row.verification_uuid is not None
            status = NumberStatus.VERIFIED if ours else NumberStatus.ALREADY_VERIFIED
            uow.numbers.transition(
                row, status, reason="listed by the account", run_id=pipeline.run_id, now=now
            )
            counts[status.value] += 1
        uow.commit()
    return dict(counts)


def finish_run(pipeline: Pipeline, counts: dict[str, int]) -> None:
    with pipeline.ledger.unit_of_work() as uow:
        uow.runs.finish_run(pipeline.run_id, counts=counts, now=pipeline.clock.now())
        uow.commit()
