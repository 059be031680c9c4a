"""The webhook receiver's writer: one thread stores the messages, several per transaction.

    writer = MessageWriter(scope, now)
    message_id, created = await writer.save(message)   # returns once the row is committed

A request's `save` returns only after the transaction that stored its message has committed, so a
200 still means "stored". Messages that arrive while a transaction is being written wait for the
next one and are then stored together (group commit): under a burst of webhooks the receiver pays
one commit and one thread hand-off per batch instead of per message, and nothing changes for a
lone message. Each message is still inserted once per (source, external_id), in arrival order.

Failures keep their meaning per message: when a batch fails because the database is unreachable
or locked (`OperationalError`, `InterfaceError`, a pool timeout) every message of it gets that
error (the receiver answers 503, the sender retries later); any other failure is retried one
message per transaction, so that one bad message cannot fail the others of its batch.

The thread starts with the first message and ends after `idle_s` without any, so a receiver that
is thrown away leaves no thread behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from callerid.inbox import store
from callerid.inbox.db import SessionScope
from callerid.inbox.models import InboundMessage

log = logging.getLogger(__name__)

MAX_BATCH = 200
IDLE_S = 5.0
_UNREACHABLE = (OperationalError, InterfaceError, PoolTimeoutError)

Result = tuple[int, bool]
_Item = tuple[InboundMessage, "asyncio.Future[Result]", asyncio.AbstractEventLoop]
_Settled = tuple["asyncio.Future[Result]", "Result | BaseException"]


class MessageWriter:
    def __init__(
        self,
        scope: SessionScope,
        now: Callable[[], datetime],
        max_batch: int = MAX_BATCH,
        idle_s: float = IDLE_S,
    ) -> None:
        if max_batch < 1 or idle_s <= 0:
            raise ValueError("max_batch must be >= 1 and idle_s > 0")
        self.scope, self.now, self.max_batch, self.idle_s = scope, now, max_batch, idle_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions that stored a batch (for tests and benchmarks)

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive (it ends after `idle_s` without messages)."""
        with self._lock:
            return self._thread is not None

    async def save(self, message: InboundMessage) -> Result:
        """Store `message` (once per source and external id): (row id, created), once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.put((message, future, loop))
        with self._lock:  # after the put: a writer that is leaving sees it, or we start one
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="inbox-webhook-writer", daemon=True
                )
                self._thread.start()
        return await future

    # the writer thread

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._store(batch)
            except Exception as exc:  # never leave a request waiting forever
                log.exception("inbox writer: unexpected failure")
                outcomes = [exc] * len(batch)
            self._hand_back(batch, outcomes)

    def _store(self, batch: list[_Item]) -> list[Result | BaseException]:
        try:
            with self.scope() as session:
                stored: list[Result | BaseException] = [
                    store.insert_message(session, message, self.now()) for message, _, _ in batch
                ]
            self.batches += 1
            return stored
        except _UNREACHABLE as exc:
            return [exc] * len(batch)
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
        # something about one message: each on its own, so the others are still stored
        return [self._store_one(message) for message, _, _ in batch]

    def _store_one(self, message: InboundMessage) -> Result | BaseException:
        try:
            with self.scope() as session:
                result = store.insert_message(session, message, self.now())
            self.batches += 1
            return result
        except Exception as exc:
            return exc

    @staticmethod
    def _hand_back(batch: list[_Item], outcomes: list[Result | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[_Settled]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled meanwhile (its message is stored anyway)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
