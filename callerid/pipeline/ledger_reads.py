"""The ledger reads the pipeline makes: plain `select()`s. The ones the loop makes every round
(`work`, `run_counts`) cost the same whatever the run's size."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from callerid.inbox.models import as_utc
from callerid.ledger.ledger import UNCOUNTED_COMMIT
from callerid.ledger.models import (
    FINAL_STATUSES,
    InboxMessage,
    InboxStatus,
    Number,
    NumberStatus,
    RunNumber,
)
from callerid.pipeline.report import NumberOutcome
from callerid.pipeline.session import Pipeline

if TYPE_CHECKING:
    from callerid.ledger import Ledger
    from callerid.pipeline.runner import Work

LIVE = (NumberStatus.INITIATING, NumberStatus.INITIATED, NumberStatus.COMPLETING)
_CHUNK = 500  # keeps IN (...) lists well under every database's parameter limit


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def rows_of(
    session: Any, account: str, e164s: Sequence[str], *, not_in: Iterable[str] = ()
) -> list[Number]:
    """The ORM rows of `e164s` (less those whose status is in `not_in`: at the end of a large
    run, loading every row to skip the verified ones would hold them all in the session)."""
    found: list[Number] = []
    skip = [str(s) for s in not_in]
    for chunk in _chunks(e164s):
        query = select(Number).where(Number.account == account, Number.e164.in_(chunk))
        if skip:
            query = query.where(Number.status.not_in(skip))
        found.extend(session.execute(query).scalars())
    return found


def statuses(pipeline: Pipeline, e164s: Sequence[str]) -> dict[str, str]:
    with pipeline.ledger.unit_of_work() as uow:
        return _statuses(uow.session, pipeline.account, e164s)


def _statuses(session: Any, account: str, e164s: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in _chunks(list(e164s)):
        query = select(Number.e164, Number.status).where(
            Number.account == account, Number.e164.in_(chunk)
        )
        out.update({e164: status for e164, status in session.execute(query)})
    return out


def outcomes(pipeline: Pipeline, e164s: Sequence[str]) -> dict[str, NumberOutcome]:
    """Where each of `e164s` stands, as plain values: columns, not ORM rows (100,000 rows in
    one session's identity map cost ~200 MB at the end of a large run)."""
    out: dict[str, NumberOutcome] = {}
    columns = (
        Number.e164,
        Number.status,
        Number.verification_uuid,
        Number.attempts,
        Number.wrong_otps,
        Number.last_error,
    )
    with pipeline.ledger.unit_of_work() as uow:
        for chunk in _chunks(list(e164s)):
            query = select(*columns).where(
                Number.account == pipeline.account, Number.e164.in_(chunk)
            )
            for e164, status, uuid, attempts, wrong_otps, last_error in uow.session.execute(query):
                out[e164] = NumberOutcome(
                    e164,
                    status,
                    uuid,
                    attempts=attempts,
                    wrong_otps=wrong_otps,
                    last_error=last_error,
                )
    return out


# How long one look at the ledger serves the loop's lanes and its progress writer when this
# process has committed nothing since (another process's commits, e.g. a webhook receiver's new
# messages, are seen this much later at most). Not longer: codes filed by another process would
# wait for it (tried: growing it to 2 s while nothing moved cost bench_flow ~10 %).
SHARED_READ_S = 0.25


@dataclass(slots=True)
class _Look:
    work: Work
    counts: dict[str, int]
    commits: int  # the ledger's commit count when the read started
    at: float  # time.monotonic() when it started


_reading = threading.Lock()  # one read at a time: the lanes that wait for it then share it


def work(pipeline: Pipeline, decision_now: datetime) -> Work:
    """The loop's look at the ledger: four small COUNTs, none of which grows with the run.

    `new_messages`, `live` and `due` count the account's rows in statuses that are bounded by the
    in-flight cap and the inbox's backlog, through the (account, status) index; the run's own
    counts are kept by the database (`callerid.ledger.run_counts`). The three lanes and the
    progress writer share one look for up to `SHARED_READ_S`, unless this process committed
    something since it was taken."""
    return _look(pipeline, decision_now).work


def run_counts(pipeline: Pipeline) -> dict[str, int]:
    """This run's numbers by status (from the loop's shared look when it is fresh)."""
    return dict(_look(pipeline, pipeline.clock.now()).counts)


def _look(pipeline: Pipeline, decision_now: datetime) -> _Look:
    with _reading:
        last = getattr(pipeline, "shared_look", None)
        now = time.monotonic()
        if (
            isinstance(last, _Look)
            and last.commits == pipeline.ledger.commits
            and now - last.at < SHARED_READ_S
        ):
            return last
        look = _read(pipeline, decision_now, pipeline.ledger.commits, now)
        pipeline.shared_look = look
        return look


def _read(pipeline: Pipeline, decision_now: datetime, commits: int, at: float) -> _Look:
    from callerid.pipeline.runner import Work

    account = pipeline.account
    with pipeline.ledger.unit_of_work() as uow:
        session = uow.session
        new_messages = session.execute(
            select(func.count())
            .select_from(InboxMessage)
            .where(
                InboxMessage.status == InboxStatus.NEW.value,
                (InboxMessage.account == account) | InboxMessage.account.is_(None),
            )
        ).scalar_one()
        live = session.execute(
            select(func.count())
            .select_from(Number)
            .where(Number.account == account, Number.status.in_([s.value for s in LIVE]))
        ).scalar_one()
        due = session.execute(
            select(func.count())
            .select_from(Number)
            .where(
                Number.account == account,
                # implied by the OR below, but said first: the (account, status) index then
                # serves it (without it SQLite walks every number of the account, O(N))
                Number.status.in_([*(s.value for s in LIVE), NumberStatus.EXPIRED.value]),
                (Number.status.in_([s.value for s in LIVE]) & (Number.expires_at <= decision_now))
                | (Number.status == NumberStatus.EXPIRED.value)
                # left mid-completion by a killed run, its grace over: resume it (loop's edit)
                | (
                    (Number.status == NumberStatus.COMPLETING.value)
                    & (Number.updated_at <= decision_now)
                ),
            )
        ).scalar_one()
        run = uow.runs.status_counts(pipeline.run_id)
        # status_counts may have folded the run's count rows: committed, but not counted as a
        # change (the counts are the same), or this look would be stale the moment it is taken
        session.info[UNCOUNTED_COMMIT] = True
        uow.commit()
    work = Work(
        new_messages=int(new_messages),
        queued=run.get(NumberStatus.QUEUED.value, 0) + run.get(NumberStatus.EXPIRED.value, 0),
        live=int(live),
        due=int(due),
        pending=sum(n for s, n in run.items() if s not in FINAL_STATUSES),
    )
    return _Look(work, run, commits, at)


def verified_but_unlisted(pipeline: Pipeline, listed: set[str]) -> list[str]:
    """This run's numbers the ledger holds as verified that `listed` lacks (read a chunk at a
    time: no map of every number's status at once)."""
    ok = [NumberStatus.VERIFIED.value, NumberStatus.ALREADY_VERIFIED.value]
    missing: list[str] = []
    with pipeline.ledger.unit_of_work() as uow:
        for chunk in _chunks(pipeline.e164s):
            query = select(Number.e164).where(
                Number.account == pipeline.account,
                Number.e164.in_(chunk),
                Number.status.in_(ok),
            )
            missing.extend(e for (e,) in uow.session.execute(query) if e not in listed)
    return missing


def waiting_for_person(pipeline: Pipeline, now: datetime, after: timedelta) -> list[str]:
    """This run's live verifications no inbox may answer: voice calls at once, SMS after `after`
    without a code (a person can type it in the Prefect UI form)."""
    member = (RunNumber.number_id == Number.id) & (RunNumber.run_id == pipeline.run_id)
    query = (
        select(Number.e164, Number.channel, Number.initiated_at)
        .join(RunNumber, member)
        .where(
            Number.account == pipeline.account,
            Number.status == NumberStatus.INITIATED.value,
            Number.verification_uuid.is_not(None),
            Number.expires_at > now,
        )
        .order_by(Number.initiated_at, Number.id)
    )
    with pipeline.ledger.unit_of_work() as uow:
        return [
            e164
            for e164, channel, initiated_at in uow.session.execute(query)
            if channel == "call"
            or (initiated_at is not None and as_utc(initiated_at) <= now - after)
        ]


def verified_numbers(ledger: Ledger, account: str) -> list[tuple[str, str | None]]:
    """(E.164, alias) of every number the ledger holds as verified for `account`."""
    ok = [NumberStatus.VERIFIED.value, NumberStatus.ALREADY_VERIFIED.value]
    with ledger.unit_of_work() as uow:
        query = select(Number.e164, Number.alias).where(
            Number.account == account, Number.status.in_(ok)
        )
        return [(e164, alias) for e164, alias in uow.session.execute(query)]
