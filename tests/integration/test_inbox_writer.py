"""The webhook receiver's writer (group commit) on SQLite and PostgreSQL: a save returns only once
its row is committed, messages that queue up meanwhile share one transaction, a bad message
fails only itself, an unreachable database fails its batch at once, the thread does not linger."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from callerid.inbox import store
from callerid.inbox.models import InboundMessage, MessageSource
from callerid.inbox.writer import MessageWriter
from tests.inbox_support import ACCOUNT, all_messages, make_engine, scope_for


def message(external_id: str | None = None, text: str = "Your code is 4821") -> InboundMessage:
    return InboundMessage(
        source=MessageSource.WEBHOOK,
        external_id=external_id or str(uuid.uuid4()),
        from_number="14155550123",
        to_number="15005550100",
        text=text,
        received_at=datetime.now(UTC),
        account=ACCOUNT,
    )


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """File SQLite, then PostgreSQL (the insert-once statement differs per dialect)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


class GatedScope:
    """The engine's scope, but the first transaction waits for `release` (so that others queue),
    and every transaction is counted."""

    def __init__(self, engine: sa.Engine) -> None:
        self.inner = scope_for(engine)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.transactions = 0

    def __call__(self) -> AbstractContextManager[Session]:
        @contextmanager
        def scope() -> Iterator[Session]:
            self.transactions += 1
            if self.transactions == 1:
                self.entered.set()
                assert self.release.wait(10)
            with self.inner() as session:
                yield session

        return scope()


async def _wait_for(condition: threading.Event) -> None:
    for _ in range(1000):
        if condition.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_messages_that_queue_up_share_one_transaction(engine: sa.Engine) -> None:
    gate = GatedScope(engine)
    writer = MessageWriter(gate, now)
    first = asyncio.ensure_future(writer.save(message("first")))
    await _wait_for(gate.entered)  # the writer is inside the first transaction
    queued = [message() for _ in range(20)]
    saves = [asyncio.ensure_future(writer.save(m)) for m in queued]
    await asyncio.sleep(0.05)
    assert not any(s.done() for s in [first, *saves])  # nothing answered before its commit
    gate.release.set()
    results = await asyncio.gather(first, *saves)
    assert gate.transactions == 2  # the first message, then the 20 that waited: one commit
    assert all(created for _, created in results)
    assert len({message_id for message_id, _ in results}) == 21
    stored = {m.external_id for m in all_messages(engine)}
    assert stored == {"first", *(m.external_id for m in queued)}


async def test_a_save_returns_after_its_row_is_committed(engine: sa.Engine) -> None:
    writer = MessageWriter(scope_for(engine), now)
    message_id, created = await writer.save(message("seen-by-others"))
    assert created
    with engine.connect() as other:  # another connection: only committed rows are visible
        found = other.execute(sa.text("SELECT id FROM inbox_messages")).scalars().all()
    assert found == [message_id]


async def test_a_replay_in_the_same_batch_is_stored_once(engine: sa.Engine) -> None:
    gate = GatedScope(engine)
    writer = MessageWriter(gate, now)
    first = asyncio.ensure_future(writer.save(message("warm")))
    await _wait_for(gate.entered)
    twice = [asyncio.ensure_future(writer.save(message("same-uuid"))) for _ in range(2)]
    gate.release.set()
    await first
    (id_a, created_a), (id_b, created_b) = await asyncio.gather(*twice)
    assert (created_a, created_b) == (True, False) and id_a == id_b
    assert [m.external_id for m in all_messages(engine)].count("same-uuid") == 1


async def test_a_bad_message_fails_alone(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.insert_message

    def insert(session: Session, m: InboundMessage, at: datetime | None = None) -> tuple[int, bool]:
        if m.external_id == "poison":
            raise ValueError("cannot store this one")
        return real(session, m, at)

    monkeypatch.setattr(store, "insert_message", insert)
    gate = GatedScope(engine)
    writer = MessageWriter(gate, now)
    first = asyncio.ensure_future(writer.save(message("warm")))
    await _wait_for(gate.entered)
    names = ["a", "poison", "b"]
    saves = [asyncio.ensure_future(writer.save(message(n))) for n in names]
    gate.release.set()
    await first
    outcomes = await asyncio.gather(*saves, return_exceptions=True)
    assert isinstance(outcomes[1], ValueError)
    assert not isinstance(outcomes[0], BaseException) and outcomes[0][1]
    assert not isinstance(outcomes[2], BaseException) and outcomes[2][1]
    assert {m.external_id for m in all_messages(engine)} == {"warm", "a", "b"}


async def test_an_unreachable_database_fails_the_batch_at_once(tmp_path: Path) -> None:
    no_tables = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    gate = GatedScope(no_tables)
    writer = MessageWriter(gate, now)
    first = asyncio.ensure_future(writer.save(message()))
    await _wait_for(gate.entered)
    saves = [asyncio.ensure_future(writer.save(message())) for _ in range(5)]
    gate.release.set()
    outcomes = await asyncio.gather(first, *saves, return_exceptions=True)
    assert all(isinstance(o, OperationalError) for o in outcomes)
    assert gate.transactions == 2  # no retry one by one: it would only wait for the same error


async def test_the_thread_ends_when_idle_and_comes_back(engine: sa.Engine) -> None:
    writer = MessageWriter(scope_for(engine), now, idle_s=0.05)
    await writer.save(message())
    deadline = time.monotonic() + 5
    while writer.running:
        assert time.monotonic() < deadline, "the writer thread lingers"
        await asyncio.sleep(0.02)
    _, created = await writer.save(message())
    assert created
    assert len(all_messages(engine)) == 2
