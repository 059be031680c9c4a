"""uvicorn's h11 protocol with deadlines and a connection cap: no client can starve the rest.

uvicorn alone times nothing until a first response is sent: a connection that sends nothing, or
trickles its headers or body a byte at a time, stays open forever, and enough of them exhaust the
descriptors (every genuine request then fails). Here each connection follows its request's phase:

- HEADERS (from the connection, or from the end of the previous response): closed after
  `header_timeout_s` without complete headers, whatever trickles in meanwhile;
- BODY (headers in, body still coming): closed after `body_timeout_s` from the headers;
- DRAIN (the app answered before the body ended, e.g. 413): at most `drain_bytes` more are read
  on, within the same body deadline, then the connection is closed; a huge body is never read;
- BUSY (request complete, the app is answering): not timed here.

Connections in HEADERS, BODY or DRAIN are "waiting". A connection is built only once its socket
has sent something (`accept`: until then it waits in the acceptor's lobby, which counts toward the
cap and makes room first). When a new socket would pass the cap, the lobby's oldest socket is
closed, else the connection that has waited longest (the new one itself when every other one is
busy): a flood of idle or trickling clients only ever displaces itself, while a genuine request,
which sends its headers and body at once, is answered. uvicorn's `limit_concurrency` is not used:
it answers 503 to every request once idle connections fill it, which is the starvation itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from callerid.serving.limits import ServerLimits

log = logging.getLogger(__name__)
EVICTION_LOG_EVERY_S = 10.0


class Phase(Enum):
    HEADERS = "headers"
    BODY = "body"
    DRAIN = "drain"
    BUSY = "busy"


class ConnectionGuard:
    """The open connections of one server, and the waiting ones oldest first.

    `open` counts the connections admitted; `arriving` the sockets that have sent their first
    bytes and whose connection is being built. With the acceptor's lobby they stay within `cap`."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.arriving = 0
        self.admitted_total = 0  # connections built (a socket that never sends is never one)
        self.evicted = 0
        self.timed_out = 0
        self._admitted: set[GuardedH11Protocol] = set()
        self._waiting: dict[GuardedH11Protocol, None] = {}  # insertion order = age
        self._said_at = -EVICTION_LOG_EVERY_S

    def expect(self) -> None:
        """A socket was kept: its protocol will be admitted."""
        self.arriving += 1

    def arrival_failed(self) -> None:
        """A kept socket failed before its protocol was admitted."""
        self.arriving = max(0, self.arriving - 1)

    def admit(self, connection: GuardedH11Protocol) -> None:
        """A new connection (waiting for its headers); closes the oldest waiting past the cap."""
        self.arriving = max(0, self.arriving - 1)
        connection.admitted = True
        self.admitted_total += 1
        self._admitted.add(connection)
        self._waiting[connection] = None
        self.open += 1
        while self.open + self.arriving > self.cap:
            if not self.evict_oldest(spare=connection):
                self._evict(connection)
                break

    def evict_oldest(self, spare: GuardedH11Protocol | None = None) -> bool:
        """Close the connection waiting longest (never `spare`); False: none is waiting."""
        oldest = next((c for c in self._waiting if c is not spare), None)
        if oldest is None:
            return False
        self._evict(oldest)
        return True

    def turned_away(self) -> None:
        """The acceptor closed a new socket at once to make room (no protocol was made)."""
        self.evicted += 1
        self._say_evicted()

    def _evict(self, connection: GuardedH11Protocol) -> None:
        self.evicted += 1
        connection.close("connection cap reached")
        self._say_evicted()

    def _say_evicted(self) -> None:
        # one line every few seconds at most, not one per connection of a flood
        now = time.monotonic()
        if now - self._said_at >= EVICTION_LOG_EVERY_S:
            log.warning(
                "connection cap (%d) reached: closing the connections waiting longest "
                "(%d closed so far)",
                self.cap,
                self.evicted,
            )
            self._said_at = now

    def waiting(self, connection: GuardedH11Protocol) -> None:
        if connection in self._admitted:
            self._waiting.setdefault(connection, None)  # keeps its age through HEADERS -> BODY

    def busy(self, connection: GuardedH11Protocol) -> None:
        self._waiting.pop(connection, None)

    def release(self, connection: GuardedH11Protocol) -> None:
        if connection in self._admitted:
            self._admitted.discard(connection)
            self._waiting.pop(connection, None)
            self.open -= 1


class GuardedConfig(uvicorn.Config):
    """uvicorn's Config plus our limits and the server's connection guard."""

    def __init__(self, app: Any, limits: ServerLimits, cap: int) -> None:
        super().__init__(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http=GuardedH11Protocol,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=limits.keep_alive_s,
            h11_max_incomplete_event_size=limits.max_header_bytes,
        )
        self.limits = limits
        self.guard = ConnectionGuard(cap)


class GuardedH11Protocol(H11Protocol):
    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, GuardedConfig):
            raise TypeError("GuardedH11Protocol needs a GuardedConfig")
        self.limits = config.limits
        self.guard = config.guard
        self.phase: Phase | None = None
        self.admitted = False  # by the guard, once: its arrival is counted
        self.waiting_since: float | None = None  # accepted at (loop time), if before it was made
        self._deadline: asyncio.TimerHandle | None = None
        self._drain_left = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter(Phase.HEADERS)
        self.guard.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.DRAIN:
            self._drain_left -= len(data)
            if self._drain_left < 0:
                self.close("request body left unread after the answer")
                return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    # phases

    def close(self, reason: str) -> None:
        log.debug("closing connection from %s: %s", self.client, reason)
        self._cancel_deadline()
        self.guard.release(self)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app, if reading the body, sees a disconnect
            self.cycle.message_event.set()
        self.transport.close()

    def _follow(self) -> None:
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        answered = self.cycle is None or self.cycle.response_complete
        if state is h11.SEND_BODY:
            self._enter(Phase.DRAIN if answered else Phase.BODY)
        elif state is h11.IDLE and answered:
            self._enter(Phase.HEADERS)
        else:
            self._enter(Phase.BUSY)

    def _enter(self, phase: Phase) -> None:
        if phase is self.phase:
            return
        previous, self.phase = self.phase, phase
        if phase is Phase.BUSY:
            self._cancel_deadline()
            self.guard.busy(self)
            return
        self.guard.waiting(self)
        if phase is Phase.HEADERS:
            since, self.waiting_since = self.waiting_since, None  # the first request only
            waited = self.loop.time() - since if since is not None else 0.0
            self._arm(max(0.0, self.limits.header_timeout_s - waited))
        elif phase is Phase.BODY:
            self._arm(self.limits.body_timeout_s)
        else:
            self._drain_left = self.limits.drain_bytes
            if previous is not Phase.BODY:  # else the body deadline keeps running
                self._arm(self.limits.body_timeout_s)

    def _arm(self, seconds: float) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.timed_out += 1
        what = "headers" if self.phase is Phase.HEADERS else "body"
        self.close(f"request {what} not received in time")
