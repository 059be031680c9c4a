"""Accepting connections so that a flood costs little, and a genuine connection waits less.

asyncio accepts at most `backlog` connections a wake-up and builds a task, a transport and a
protocol for each before the guard sees it; the guard then evicts one older connection for each
new one past the cap. A flood of 2,000 connects cost ~100-140 us of CPU each that way, and a
genuine connection queued behind them in the kernel waited for all of it: 0.2-0.3 s on a quiet
machine, 0.6-2.4 s under load (measured). Nothing can reorder the kernel's queue; what can change
is the price of what stands before the genuine connection in it.

Here `Acceptor` reads the listening socket itself. A new connection first waits in its lobby, a
plain socket watched for its first bytes, with no transport or protocol: those are built only
once it sends something (a genuine client sends its request at once). A client that never sends
costs an accept, a watch and a close. The lobby counts toward the guard's cap and is what makes
room first, oldest first (a socket that has sent nothing at all), then the guard's waiting
connections, oldest first. A socket is in the lobby at most `header_timeout_s`, and that time
counts toward its request's header deadline.

Each wake-up accepts everything queued; of a burst larger than the cap, the oldest are closed at
once, never watched. Descriptors: at most the cap (lobby, arriving and open connections together)
plus, within one wake-up, the burst being accepted (at most the cap) or as many evicted
connections whose sockets close at the next turn of the loop; `connection_cap` leaves room.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable

from callerid.serving.protocol import ConnectionGuard, GuardedH11Protocol

log = logging.getLogger(__name__)
OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
RESOURCE_RETRY_S = 0.5  # asyncio waits 1 s; a shorter pause keeps genuine clients waiting less


class Acceptor:
    """Accepts the connections of one listening socket; holds those that have sent nothing."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], GuardedH11Protocol],
        guard: ConnectionGuard,
        burst: int,
        header_timeout_s: float,
    ) -> None:
        self.loop, self.sock, self.factory, self.guard = loop, sock, protocol_factory, guard
        self.burst, self.header_timeout_s = burst, header_timeout_s
        self._lobby: dict[socket.socket, float] = {}  # insertion order = age; value: accepted at
        self._sweep: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def start(self, listen_backlog: int) -> None:
        self.sock.setblocking(False)
        self.sock.listen(listen_backlog)
        self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting and close the lobby (the connections are uvicorn's to shut down)."""
        self._closed = True
        if self.sock.fileno() != -1:
            self.loop.remove_reader(self.sock.fileno())
        if self._sweep is not None:
            self._sweep.cancel()
        while self._lobby:
            self._drop(next(iter(self._lobby)))

    # the listening socket

    def _accept(self) -> None:
        # Everything queued, in order. More than the cap in one burst cannot all be kept: the
        # oldest go at once, before any is watched (an accept and a close each, nothing else).
        burst: deque[socket.socket] = deque()
        for _ in range(self.burst):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break  # nothing more queued
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    raise  # the loop logs it (rate-limited) and calls us again
                self._pause(exc)
                break
            burst.append(conn)
            if len(burst) > self.guard.cap:
                burst.popleft().close()
                self.guard.turned_away()
        for conn in burst:
            conn.setblocking(False)
            self._lobby[conn] = self.loop.time()
            self.loop.add_reader(conn.fileno(), self._readable, conn)
            if len(self._lobby) == 1:
                self._arm_sweep()
            self._make_room()

    def _make_room(self) -> None:
        guard = self.guard
        while len(self._lobby) + guard.open + guard.arriving > guard.cap:
            if len(self._lobby) > 1 or not guard.evict_oldest():
                self._drop(next(iter(self._lobby)))  # the newest goes only when nothing else can
                guard.turned_away()

    def _pause(self, exc: OSError) -> None:
        """Out of descriptors (something else in the process holds them): stop accepting for a
        moment, as asyncio does, logging through the loop's (rate-limited) exception handler."""
        self.loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": exc}
        )
        self.loop.remove_reader(self.sock.fileno())
        self.loop.call_later(RESOURCE_RETRY_S, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    # the lobby

    def _drop(self, conn: socket.socket) -> None:
        del self._lobby[conn]
        self.loop.remove_reader(conn.fileno())
        conn.close()

    def _arm_sweep(self) -> None:
        if self._lobby and self._sweep is None and not self._closed:
            oldest = next(iter(self._lobby.values()))
            self._sweep = self.loop.call_at(oldest + self.header_timeout_s, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        now = self.loop.time()
        while self._lobby:
            conn, accepted_at = next(iter(self._lobby.items()))
            if accepted_at + self.header_timeout_s > now:
                break
            self.guard.timed_out += 1  # counted before the close a client may already see
            self._drop(conn)
        self._arm_sweep()

    def _readable(self, conn: socket.socket) -> None:
        """Its first bytes: it becomes a connection, its data read by the protocol. A client that
        left (or reset) without a word is closed here: no connection is built for it."""
        try:
            gone = not conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return  # woken for nothing: still silent
        except OSError:
            gone = True
        if gone:
            self._drop(conn)
            return
        accepted_at = self._lobby.pop(conn)
        self.loop.remove_reader(conn.fileno())
        self.guard.expect()
        task = self.loop.create_task(self._connect(conn, accepted_at))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket, accepted_at: float) -> None:
        made: list[GuardedH11Protocol] = []

        def protocol() -> GuardedH11Protocol:
            made.append(self.factory())
            made[0].waiting_since = accepted_at
            return made[0]

        try:
            await self.loop.connect_accepted_socket(protocol, conn)
        except Exception as exc:  # reset before its transport was made, and the like
            log.debug("incoming connection dropped: %s", type(exc).__name__)
            conn.close()
        finally:
            if not (made and made[0].admitted):
                self.guard.arrival_failed()  # else it would count toward the cap for ever
