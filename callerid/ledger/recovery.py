"""Resolving numbers a crash left in `initiating` or `completing` (design.md, "States of a number").

The promise: a crash and a rerun never send a second OTP for a number whose first one may still
be valid, and never lose a verified result. For each such number, with `listed` = the account
lists it as a verified caller ID (a GET, or a fresh list) and `now` = the caller's decision time
(callers pass `now - grace` to allow for clock skew and requests still in flight):

| status      | listed | window (see below) | action                                               |
|-------------|--------|--------------------|------------------------------------------------------|
| initiating  | yes    | any                | -> verified                                          |
| initiating  | no     | may still be open  | left alone: not queued, so nothing re-initiates it   |
| initiating  | no     | over               | -> expired (counts the attempt: an OTP may have gone)|
| completing  | yes    | any                | -> verified                                          |
| completing  | no     | open               | -> initiated: the code (its message is still `new`)  |
|             |        |                    |    is matched and submitted again                    |
| completing  | no     | over               | -> expired                                           |

Then `expired` -> `queued` / `failed` by attempts left when `max_attempts` is given; without it
the numbers wait in `expired` for the next `expire_due`, which settles them the same way.

Rows changed after `now - min_age` are presumed to belong to a live process (another worker on
the same PostgreSQL ledger, mid-call) and are left for a later pass. With the default `min_age`
of 0 that already covers the caller's grace (rows changed after the decision time, 30 s for the
loop), which outlasts any call of a live worker: an initiate or a completion goes on the wire
within its send window of its claim or not at all (`pipeline.steps`: 60 s for a batch of
initiates, stamped into the window; 15 s for completions), and is answered or timed out 10 s
later.

The window end: for `initiating`, the latest of `expires_at`, `initiated_at + OTP_WINDOW` and
`updated_at + OTP_WINDOW` (the claim and any restamp after an unknown outcome happened no earlier
than the send, so this bounds when Plivo could have started the window); for `completing`,
`expires_at` (set from the real send when the initiate succeeded), else the same bound.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from callerid.ledger.models import Number, NumberStatus
from callerid.ledger.states import OTP_WINDOW

INTERRUPTED = (NumberStatus.INITIATING, NumberStatus.COMPLETING)


class Action(StrEnum):
    VERIFY = "verified"
    WAIT = "waiting"
    RESUME = "resumed"  # completing -> initiated
    EXPIRE = "expired"


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What recovery needs to know about one interrupted number (plain values)."""

    e164: str
    status: NumberStatus
    initiated_at: datetime | None
    expires_at: datetime | None
    updated_at: datetime
    verification_uuid: str | None

    @classmethod
    def of(cls, row: Number) -> Interrupted:
        return cls(
            row.e164,
            NumberStatus(row.status),
            row.initiated_at,
            row.expires_at,
            row.updated_at,
            row.verification_uuid,
        )


def window_end(n: Interrupted) -> datetime:
    """The latest moment an OTP sent for the current attempt could still be accepted."""
    bounds = [n.updated_at + OTP_WINDOW]
    if n.initiated_at is not None:
        bounds.append(n.initiated_at + OTP_WINDOW)
    if n.status is NumberStatus.COMPLETING and n.expires_at is not None:
        return n.expires_at
    if n.expires_at is not None:
        bounds.append(n.expires_at)
    return max(bounds)


def decide(n: Interrupted, listed: bool, now: datetime) -> Action:
    if listed:
        return Action.VERIFY
    if now < window_end(n):
        if n.status is NumberStatus.COMPLETING and n.verification_uuid:
            return Action.RESUME
        return Action.WAIT
    return Action.EXPIRE


def interrupted(uow: Any, account: str, changed_by: datetime) -> list[Number]:
    """The account's numbers in `initiating` / `completing`, last changed no later than
    `changed_by` (later ones may still be in a live process's hands)."""
    query = (
        select(Number)
        .where(
            Number.account == account,
            Number.status.in_([s.value for s in INTERRUPTED]),
            Number.updated_at <= changed_by,
        )
        .order_by(Number.id)
    )
    return list(uow.session.execute(query).scalars())


def apply(
    uow: Any,
    rows: Sequence[Number],
    listed: Sequence[bool],
    now: datetime,
    run_id: str | None,
    max_attempts: int | None,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row, is_listed in zip(rows, listed, strict=True):
        action = decide(Interrupted.of(row), is_listed, now)
        if action is Action.WAIT:
            continue  # untouched: restamping it would push its window out
        if action is Action.VERIFY:
            uow.numbers.transition(
                row,
                NumberStatus.VERIFIED,
                reason="listed by the account after an interruption",
                run_id=run_id,
                now=now,
            )
        elif action is Action.RESUME:
            uow.numbers.transition(
                row,
                NumberStatus.INITIATED,
                reason="completion interrupted; the code is retried",
                run_id=run_id,
                now=now,
            )
        else:
            reason = f"interrupted while {row.status}; window over and not listed"
            if row.last_error:  # keep what interrupted it (an HTTP 5xx, a timeout...)
                reason = f"{reason} (after: {row.last_error})"
            uow.numbers.transition(
                row,
                NumberStatus.EXPIRED,
                reason=reason,
                run_id=run_id,
                now=now,
                last_error=reason,
            )
            if max_attempts is not None:
                settled = uow.numbers.settle_expired(
                    row, now=now, run_id=run_id, max_attempts=max_attempts
                )
                counts[settled.value] = counts.get(settled.value, 0) + 1
                continue
        counts[action.value] = counts.get(action.value, 0) + 1
    return counts


def recover_interrupted(
    uow: Any,
    account: str,
    now: datetime,
    lookup: Callable[[str], bool],
    run_id: str | None,
    *,
    max_attempts: int | None = None,
    min_age: timedelta = timedelta(0),
    skip: Collection[str] = (),
) -> dict[str, int]:
    """Resolve the account's interrupted numbers (table above); does not commit.

    Returns how many numbers moved, by where they went (`verified`, `resumed`, `expired`, or
    `queued` / `failed` when `max_attempts` is given). Numbers left waiting are not counted.
    `skip`: numbers the caller itself has mid-call (not leftovers of a crash).
    """
    rows = [r for r in interrupted(uow, account, now - min_age) if r.e164 not in skip]
    return apply(uow, rows, [bool(lookup(r.e164)) for r in rows], now, run_id, max_attempts)


async def recover_interrupted_async(
    uow: Any,
    account: str,
    now: datetime,
    lookup: Callable[[str], Awaitable[bool]],
    run_id: str | None,
    *,
    max_attempts: int | None = None,
    min_age: timedelta = timedelta(0),
) -> dict[str, int]:
    """`recover_interrupted` with an async lookup (e.g. one GET per number through the client).

    The lookups run one after another: the account's rate limiter paces them anyway, and a
    database session must not be shared across concurrent tasks.
    """
    rows = interrupted(uow, account, now - min_age)
    listed = [bool(await lookup(r.e164)) for r in rows]
    return apply(uow, rows, listed, now, run_id, max_attempts)
