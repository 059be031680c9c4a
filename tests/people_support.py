"""Helpers for the people tests: numbers waiting for a code, a code page on a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select

from callerid.clock import ManualClock
from callerid.inbox import WebhookServer
from callerid.ledger import InboxMessage, Ledger, NumberRecord, NumberStatus
from callerid.people import Link, sign
from callerid.people.keys import link_key
from callerid.people.owners import assign_owners
from tests.ledger_support import ACCOUNT, RUN, T0, drive

TOKEN = "sandbox-token"


def waiting_numbers(
    ledger: Ledger,
    owners: dict[str, str],
    *,
    channel: str = "call",
    now: datetime = T0,
    alias: str | None = "Front desk",
    run_id: str = RUN,
) -> None:
    """Register `owners`' numbers (E.164 -> owner) for `run_id` and leave them `initiated` at
    `now`."""
    with ledger.unit_of_work() as uow:
        rows = [NumberRecord(e164, alias=alias, channel=channel) for e164 in owners]
        uow.numbers.upsert_many(ACCOUNT, rows, run_id, now)
        assign_owners(uow.session, ACCOUNT, owners)
        uow.commit()
    for e164 in owners:
        drive(ledger, e164, NumberStatus.INITIATING, NumberStatus.INITIATED, now=now)


def inbox_count(ledger: Ledger) -> int:
    with ledger.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(InboxMessage)).scalar_one())


@dataclass
class Page:
    server: WebhookServer
    ledger: Ledger
    clock: ManualClock
    clients: list[httpx.Client] = field(default_factory=list)

    def key(self) -> bytes:
        with self.ledger.unit_of_work() as uow:
            key = link_key(uow.session)
            uow.commit()
            return key

    def link(self, numbers: list[str], owner: str = "ana@example.com", minutes: int = 15) -> str:
        link = Link(ACCOUNT, owner, tuple(numbers), T0 + timedelta(minutes=minutes))
        return sign(self.key(), link)

    def url(self, token: str) -> str:
        return f"{self.server.code_page_base}/codes/{token}"


@contextmanager
def code_page(ledger: Ledger) -> Iterator[Page]:
    clock = ManualClock(T0 + timedelta(minutes=1))
    with WebhookServer(ledger, ACCOUNT, {ACCOUNT: TOKEN}, TOKEN, clock=clock) as server:
        page = Page(server, ledger, clock)
        try:
            yield page
        finally:
            for client in page.clients:
                client.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def browser(page: Page) -> httpx.Client:
    """A client with its own cookie jar (one person's browser), closed with the page."""
    client = httpx.Client(timeout=10, follow_redirects=False, base_url=page.server.code_page_base)
    page.clients.append(client)
    return client
