"""The number repository: reads, bulk registration, claims, and THE place where a status changes.

Every status change goes through `transition` (or `claim` / `transition_many`, which apply the
same table from `callerid.ledger.states`) and writes its `Event` in the same transaction. Nothing
here commits: the unit of work does, once per chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, inspect, select, update
from sqlalchemy.orm import Session

from callerid.ledger import states
from callerid.ledger.errors import IllegalTransitionError
from callerid.ledger.models import Event, Number, NumberStatus
from callerid.ledger.upsert import UpsertResult, upsert_many

EXPIRY_REASON = "no code within the OTP window"
_EVENTS = cast(Table, Event.__table__)


def _status(value: str | NumberStatus) -> NumberStatus:
    return NumberStatus(value)


class NumberRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- registration and reads ------------------------------------------------------------------

    def upsert_many(
        self, account: str, records: Iterable[Any], run_id: str | None, now: datetime
    ) -> UpsertResult:
        """Register numbers; see `callerid.ledger.upsert` for what happens to known ones.

        Uses Core statements: Number objects loaded earlier in this unit of work are not refreshed.
        """
        return upsert_many(self.session, account, records, run_id, now)

    def get(self, account: str, e164: str) -> Number | None:
        query = select(Number).where(Number.account == account, Number.e164 == e164)
        return self.session.execute(query).scalar_one_or_none()

    def by_status(
        self, account: str, *statuses: str | NumberStatus, limit: int | None = None
    ) -> list[Number]:
        """Numbers in any of `statuses` (all numbers when none are given), oldest first."""
        query = select(Number).where(Number.account == account).order_by(Number.id).limit(limit)
        if statuses:
            query = query.where(Number.status.in_([_status(s).value for s in statuses]))
        return list(self.session.execute(query).scalars())

    def counts_by_status(self, account: str | None = None) -> dict[NumberStatus, int]:
        """Every status with its count (zeros included); `account=None` counts all accounts."""
        query = select(Number.status, func.count()).group_by(Number.status)
        if account is not None:
            query = query.where(Number.account == account)
        found = {status: int(n) for status, n in self.session.execute(query)}
        return {status: found.get(status.value, 0) for status in NumberStatus}

    def accounts(self) -> list[str]:
        """Every account with numbers in the ledger, sorted."""
        query = select(Number.account).distinct().order_by(Number.account)
        return list(self.session.execute(query).scalars())

    def live_verifications(self, account: str, now: datetime) -> list[Number]:
        """Initiated numbers whose OTP window is still open: the ones a code can complete."""
        query = (
            select(Number)
            .where(
                Number.account == account,
                Number.status == NumberStatus.INITIATED.value,
                Number.verification_uuid.is_not(None),
                Number.expires_at > now,
            )
            .order_by(Number.initiated_at, Number.id)
        )
        return list(self.session.execute(query).scalars())

    # -- claims -----------------------------------------------------------------------------------

    def claim(
        self,
        account: str,
        from_statuses: Sequence[str | NumberStatus],
        to_status: str | NumberStatus,
        limit: int,
        now: datetime,
        run_id: str | None,
        reason: str,
        *,
        send_window: timedelta = timedelta(0),
    ) -> list[Number]:
        """Atomically move up to `limit` numbers (oldest first) from `from_statuses` to `to_status`.

        PostgreSQL: `FOR UPDATE SKIP LOCKED`, so concurrent claimers never get the same number.
        SQLite: the same interface; the guarded UPDATE keeps one process (WAL) safe.
        A claim to `initiating` stamps `initiated_at` = `now` and `expires_at` = `now` +
        `send_window` + the OTP window: the intent row that recovery reads. `send_window` is how
        long after `now` the caller may still send a request (a paced batch): an OTP sent at its
        end is live until then. Commit the claim before calling the API.
        """
        target = _status(to_status)
        sources = [_status(s) for s in from_statuses]
        for source in sources:
            if not states.is_allowed(source, target) or states.side_effects(source, target, 0):
                raise IllegalTransitionError("<claim>", source.value, target.value)
        if limit <= 0 or not sources:
            return []
        self.session.flush()
        wanted = [s.value for s in sources]
        picked = (
            select(Number.id, Number.status)
            .where(Number.account == account, Number.status.in_(wanted))
            .order_by(Number.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        before: dict[int, str] = {i: s for i, s in self.session.execute(picked)}
        if not before:
            return []
        values: dict[str, Any] = {
            "status": target.value,
            "updated_at": now,
            "version": Number.version + 1,
        }
        if run_id is not None:
            values["last_run_id"] = run_id
        if target is NumberStatus.INITIATING:
            # a new attempt: an error left by the last one would be misread as this one's
            values.update(
                initiated_at=now, expires_at=now + send_window + states.OTP_WINDOW, last_error=None
            )
        # The status guard re-checks each row: on SQLite another process may have moved it since.
        statement = (
            update(Number)
            .where(Number.id.in_(list(before)), Number.status.in_(wanted))
            .values(**values)
            .returning(Number)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        claimed = sorted(self.session.execute(statement).scalars(), key=lambda n: n.id)
        if claimed:
            self.session.execute(
                insert(_EVENTS),  # Core: one multi-row INSERT, not the ORM's row-by-row path
                [
                    {
                        "number_id": n.id,
                        "from_status": before[n.id],
                        "to_status": target.value,
                        "reason": reason,
                        "run_id": run_id,
                        "at": now,
                    }
                    for n in claimed
                ],
            )
        return claimed

    # -- transitions ------------------------------------------------------------------------------

    def transition(
        self,
        number: Number,
        to_status: str | NumberStatus,
        *,
        reason: str | None,
        run_id: str | None,
        now: datetime,
        **fields: Any,
    ) -> Event:
        """Move `number` to `to_status`, setting `fields`, and record the event.

        Raises `IllegalTransitionError` for a move `states.ALLOWED` does not list, and TypeError
        for a field that is not one of `states.MUTABLE_FIELDS`. The implied changes of
        `states.side_effects` (attempt counting, resets) apply unless `fields` set them.
        """
        states.check_fields(fields)
        if inspect(number).session is not self.session:
            raise ValueError(f"{number.e164} was loaded by another unit of work")
        source, target = _status(number.status), _status(to_status)
        if not states.is_allowed(source, target):
            raise IllegalTransitionError(number.e164, source.value, target.value)
        changes = states.side_effects(source, target, number.attempts)
        changes.update(fields)
        for name, value in changes.items():
            setattr(number, name, value)
        number.status = target.value
        number.updated_at = now
        if run_id is not None:
            number.last_run_id = run_id
        event = Event(
            number_id=number.id,
            from_status=source.value,
            to_status=target.value,
            reason=reason,
            run_id=run_id,
            at=now,
        )
        self.session.add(event)
        return event

    def transition_many(
        self,
        numbers: Iterable[Number],
        to_status: str | NumberStatus,
        *,
        reason: str | None,
        run_id: str | None,
        now: datetime,
        **fields: Any,
    ) -> int:
        """`transition` for each number (all or nothing: the first illegal move raises)."""
        rows = list(numbers)
        target = _status(to_status)
        for row in rows:  # check them all before touching any
            if not states.is_allowed(row.status, target):
                raise IllegalTransitionError(row.e164, row.status, target.value)
        for row in rows:
            self.transition(row, target, reason=reason, run_id=run_id, now=now, **fields)
        return len(rows)

    def touch(self, number: Number, *, now: datetime, **fields: Any) -> None:
        """Change fields without a status change (no event): e.g. an unknown initiate outcome
        restamps `initiated_at` so that recovery waits out the window from the real send."""
        states.check_fields(fields)
        for name, value in fields.items():
            setattr(number, name, value)
        number.updated_at = now

    def expire_due(
        self, account: str, now: datetime, run_id: str | None, max_attempts: int
    ) -> list[Number]:
        """Initiated numbers whose window ended by `now` go to `expired`, then to `queued` while
        attempts are left (`attempts < max_attempts`), else to `failed`. Numbers already sitting
        in `expired` (recovery leaves them there) are settled the same way. Returns them all."""
        due = select(Number).where(
            Number.account == account,
            # implied by the OR below; said so that the (account, status) index serves it
            Number.status.in_([NumberStatus.INITIATED.value, NumberStatus.EXPIRED.value]),
            (
                (Number.status == NumberStatus.INITIATED.value) & (Number.expires_at <= now)
                | (Number.status == NumberStatus.EXPIRED.value)
            ),
        )
        rows = list(self.session.execute(due.order_by(Number.id)).scalars())
        for row in rows:
            if row.status != NumberStatus.EXPIRED.value:
                self.transition(
                    row,
                    NumberStatus.EXPIRED,
                    reason=EXPIRY_REASON,
                    run_id=run_id,
                    now=now,
                    last_error=EXPIRY_REASON,
                )
            self.settle_expired(row, now=now, run_id=run_id, max_attempts=max_attempts)
        return rows

    def settle_expired(
        self, number: Number, *, now: datetime, run_id: str | None, max_attempts: int
    ) -> NumberStatus:
        """An expired number back to the queue, or to `failed` when its attempts are used up."""
        target = states.after_expiry(number.attempts, max_attempts)
        if target is NumberStatus.QUEUED:
            why = f"attempts left ({number.attempts} of {max_attempts} used)"
        else:
            why = f"all {number.attempts} attempt(s) used"
        self.transition(number, target, reason=why, run_id=run_id, now=now)
        return target
