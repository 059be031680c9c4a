"""What the account says, and changing it: listing every page, confirming losses, applying a plan.

Listing is the reconciler's bulk of requests (one per 20 numbers), so after the first page (which
gives `total_count`) the remaining pages are fetched concurrently: the shared limiter, not the
round trip, then sets the pace. A number that shows up on two pages (the list shifted while we
paged) is kept once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from callerid.plivo import (
    PAGE_SIZE,
    AuthenticationError,
    NotFoundError,
    PlivoClient,
    PlivoError,
    RequestRejectedError,
)
from callerid.plivo.models import CallerId
from callerid.reconcile.models import Action, ActionKind, ActionResult, Listed, Outcome, Scope

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CONCURRENCY = 16


def to_listed(caller_id: CallerId) -> Listed:
    return Listed(
        phone_number=caller_id.phone_number,
        alias=caller_id.alias,
        subaccount=caller_id.subaccount,
        country=caller_id.country,
    )


async def _bounded(
    items: Iterable[T], fn: Callable[[T], Awaitable[R]], concurrency: int
) -> list[R]:
    semaphore = asyncio.Semaphore(max(1, concurrency))

    async def one(item: T) -> R:
        async with semaphore:
            return await fn(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def list_account(
    client: PlivoClient, scope: Scope, *, concurrency: int = DEFAULT_CONCURRENCY
) -> tuple[Listed, ...]:
    """Every caller ID in `scope`, ordered by number."""
    filters = {"country": scope.country, "subaccount": scope.subaccount}
    first = await client.list_page(PAGE_SIZE, 0, **filters)
    offsets = range(len(first.items), first.total_count, PAGE_SIZE) if first.items else range(0)

    async def page(offset: int) -> tuple[CallerId, ...]:
        return (await client.list_page(PAGE_SIZE, offset, **filters)).items

    pages = await _bounded(offsets, page, concurrency)
    seen: dict[str, Listed] = {}
    for item in (*first.items, *(i for p in pages for i in p)):
        seen.setdefault(item.phone_number, to_listed(item))
    return tuple(seen[n] for n in sorted(seen))


async def still_listed(
    client: PlivoClient, numbers: Iterable[str], *, concurrency: int = DEFAULT_CONCURRENCY
) -> dict[str, Listed]:
    """GET each number; those the account still has (a scoped list may simply not show them)."""

    async def probe(number: str) -> Listed | None:
        try:
            return to_listed(await client.get(number))
        except NotFoundError:
            return None

    found = await _bounded(list(numbers), probe, concurrency)
    return {item.phone_number: item for item in found if item is not None}


async def apply_to_account(
    client: PlivoClient, actions: Iterable[Action], *, concurrency: int = DEFAULT_CONCURRENCY
) -> list[ActionResult]:
    """Carry out the UPDATE and DELETE actions; one failure never stops the others."""

    async def run(action: Action) -> ActionResult:
        try:
            if action.kind is ActionKind.UPDATE:
                await client.update(
                    action.phone_number, alias=action.alias, subaccount=action.subaccount
                )
            elif action.kind is ActionKind.DELETE:
                await client.delete(action.phone_number, missing_ok=True)
            else:
                raise ValueError(f"{action.kind} is not an account action")
        except PlivoError as exc:
            refused = isinstance(exc, NotFoundError | RequestRejectedError | AuthenticationError)
            error = f"{type(exc).__name__}: {exc}"
            return ActionResult(action, Outcome.FAILED, error=error, refused=refused)
        return ActionResult(action, Outcome.DONE)

    todo = [a for a in actions if a.kind in (ActionKind.UPDATE, ActionKind.DELETE)]
    return await _bounded(todo, run, concurrency)
