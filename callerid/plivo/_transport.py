"""One request to Plivo: pace, send, classify the outcome, log it; repeat per the RetryPolicy.

Log records (logger `callerid.plivo`) carry method, path, status, attempt and elapsed time, as text
and as `extra` fields. Never bodies (an OTP travels in one), never headers (Basic auth). An error
body's text goes into the exception only with the client's token and Basic auth value masked.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import RetryCallState

from callerid.plivo._wire import WirePool
from callerid.plivo.errors import (
    NotSentError,
    OutcomeUnknownError,
    PlivoConnectionError,
    PlivoError,
    PlivoTimeoutError,
    RateLimitedError,
    ServerError,
    api_error_message,
    error_for_status,
)
from callerid.plivo.limiter import Priority, RateLimiter
from callerid.plivo.retry import RetryPolicy, parse_retry_after

logger = logging.getLogger("callerid.plivo")

# The connection pool holds as many connections as requests the limiter lets be in flight at once:
# its burst, then its rate for as long as a slow round trip lasts. Capped: past a few dozen, more
# connections add no throughput on one host (requests beyond them wait a moment for a free one,
# after their grant; the limiter counts them from when they reach the wire), while httpcore's pool
# scans its connections and queued requests on every request event (issue 14: sized from the
# rate, `ceil(rate/s)`, it held up to 20,000 connections and took a fifth of the run's CPU).
POOL_MIN = 4
POOL_MAX = 32
ROUND_TRIP_BUDGET_S = 0.5
# The pool is split into lanes of at most this many connections, one httpx client each: httpcore
# scans every connection of its pool (a poll + getpeername per idle one, for `has_expired`) on
# each request and each response close, so one pool of 32 cost the run ~1.5 ms of CPU per request
# on our 2-core machine, and lanes of 4 cost an eighth of that scan. A request takes the lane with
# the fewest requests in flight; the gate keeps the total at the pool's size, so that lane always
# has a free connection and no request queues inside httpcore.
LANE_SIZE = 4
# Below uvicorn's and most servers' 5 s idle timeout, so we rarely reuse a connection the server is
# closing: that race looks like "dropped after send" and would make an initiate's outcome unknown.
KEEPALIVE_EXPIRY_S = 4.0

_URL_CACHE = 256


# The request never reached the server: repeating it cannot duplicate anything.
class _PastSendBy(Exception):
    """An attempt's `send_by` passed after its limiter grant, before any byte was written."""


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def pool_limits(limiter: RateLimiter) -> httpx.Limits:
    """The connection pool for a client paced by `limiter` (see POOL_MAX), all lanes together."""
    in_flight = limiter.burst + math.ceil(limiter.rate_per_s * ROUND_TRIP_BUDGET_S)
    size = max(POOL_MIN, min(POOL_MAX, in_flight))
    return httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY_S
    )


def lane_limits(limiter: RateLimiter) -> list[httpx.Limits]:
    """`pool_limits` split into lanes of at most LANE_SIZE connections (see LANE_SIZE)."""
    size = pool_limits(limiter).max_connections or POOL_MAX
    return [
        httpx.Limits(
            max_connections=n, max_keepalive_connections=n, keepalive_expiry=KEEPALIVE_EXPIRY_S
        )
        for n in (min(LANE_SIZE, size - start) for start in range(0, size, LANE_SIZE))
    ]


class Reply(Protocol):
    """What the client reads of a response (an httpx.Response or a lean WireResponse)."""

    @property
    def status_code(self) -> int: ...
    @property
    def is_success(self) -> bool: ...
    @property
    def content(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def json(self) -> Any: ...


class _Lane:
    """One httpx client (its own small connection pool) and how many requests it has in flight.
    Used when a test gives the client an httpx transport, or when a proxy is configured."""

    __slots__ = ("_prefix", "_urls", "busy", "http")

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.busy = 0
        self._prefix = str(http.base_url).rstrip("/")
        self._urls: dict[str, httpx.URL] = {}

    def url(self, path: str) -> httpx.URL:
        """`path` on the client's base URL, as httpx would merge it, parsed once (httpx parses a
        relative URL, then the merged one, on every request). The paths that repeat (initiate's,
        the list's) stay parsed; one-off ones (a verification's) are dropped now and then."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            url = self._urls[path] = httpx.URL(self._prefix + path)
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str | int] | None,
        before_send: Callable[[], None],
        on_head: Callable[[], None],
    ) -> Reply:
        async def on_wire(event: str, info: Mapping[str, Any]) -> None:
            # httpcore's trace hook: the request starts leaving now (any connection set up)
            if event.endswith("send_request_headers.started"):
                before_send()
            elif event.endswith("receive_response_headers.complete"):
                on_head()

        return await self.http.request(
            method, self.url(path), json=json, params=params, extensions={"trace": on_wire}
        )

    async def aclose(self) -> None:
        await self.http.aclose()


@dataclass
class RequestTrace:
    """What happened across the attempts of one logical request."""

    attempts: int = 0
    # Attempts that may have reached the server without a usable answer: timeouts, connections
    # dropped after sending, 5xx. A later 4xx may then be the echo of our own earlier success.
    unanswered_attempts: int = 0


def _busy(lane: _Lane | WirePool) -> int:
    return lane.busy


class Transport:
    def __init__(
        self,
        http: httpx.AsyncClient | WirePool | Sequence[httpx.AsyncClient | WirePool],
        limiter: RateLimiter,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        clients = [http] if isinstance(http, httpx.AsyncClient | WirePool) else list(http)
        if not clients:
            raise ValueError("a transport needs at least one connection pool")
        # the lean pool is a lane itself (it scans nothing per request); httpx clients are wrapped
        self._lanes = [c if isinstance(c, WirePool) else _Lane(c) for c in clients]
        gate = sum(c.size for c in clients if isinstance(c, WirePool))
        self._secrets = secrets  # masked in any API text that goes into an exception
        self._limiter = limiter
        # Requests enter the connection pools only as fast as their connections free up: a request
        # queued inside httpcore's pool is rescanned on every pool event (O(queued x connections)
        # each), one waiting here costs nothing until it is woken. With several lanes (one pool
        # each, see LANE_SIZE) the least busy lane then has a free connection.
        self._gate = asyncio.Semaphore(gate or pool_limits(limiter).max_connections or POOL_MAX)
        self._policy = policy
        self._sleep = sleep

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        repeatable: bool = True,
        priority: Priority = Priority.NORMAL,
        trace: RequestTrace | None = None,
        phone_number: str | None = None,
        send_by: float | None = None,
    ) -> Reply:
        """A 2xx response, or the PlivoError of the last attempt.

        `send_by` (a `time.monotonic()` value): no attempt goes on the wire after it; one still
        waiting for the limiter then raises `NotSentError` (a caller that promised a send deadline
        to someone, e.g. the ledger's intent row for a crash, keeps the promise)."""
        trace = trace or RequestTrace()

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.info(
                "%s %s: retrying after %s (attempt %d) in %.2fs",
                method,
                path,
                type(error).__name__,
                state.attempt_number,
                wait,
                extra={"method": method, "path": path, "attempt": state.attempt_number},
            )

        retrying = self._policy.retrying(
            repeatable=repeatable, before_sleep=before_sleep, sleep=self._sleep
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(
                    method, path, json, params, repeatable, priority, trace, phone_number, send_by
                )
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(
        self,
        method: str,
        path: str,
        json: Mapping[str, Any] | None,
        params: Mapping[str, str | int] | None,
        repeatable: bool,
        priority: Priority,
        trace: RequestTrace,
        phone_number: str | None,
        send_by: float | None = None,
    ) -> Reply:
        granted_at = await self._grant(priority, send_by, method, path, phone_number)
        trace.attempts += 1
        limiter = self._limiter
        stamp: list[float] = []  # the request's slot in the limiter, once it is on the wire

        def before_send() -> None:  # the request starts leaving now (any connection set up)
            if send_by is not None and time.monotonic() > send_by:
                raise _PastSendBy  # a new connection took that long: nothing written yet
            stamp.append(limiter.sent(stamp.pop() if stamp else granted_at))

        def on_head() -> None:  # the answer's headers are in
            if stamp:
                limiter.answered(stamp.pop())  # counted later by any delay on its way

        start = time.monotonic()
        try:
            async with self._gate:
                if send_by is not None and time.monotonic() > send_by:
                    raise _PastSendBy  # granted in time, then queued for a connection too long
                lane = min(self._lanes, key=_busy)
                lane.busy += 1
                try:
                    response = await lane.request(
                        method,
                        path,
                        json=json,
                        params=params,
                        before_send=before_send,
                        on_head=on_head,
                    )
                finally:
                    lane.busy -= 1
        except _PastSendBy:
            self._log(method, path, "NotSent", trace.attempts, start)
            raise self._not_sent(method, path, phone_number) from None
        except _NOT_SENT as exc:
            self._log(method, path, type(exc).__name__, trace.attempts, start)
            raise PlivoConnectionError(
                f"{method} {path}: could not connect ({type(exc).__name__})",
                method=method,
                path=path,
                phone_number=phone_number,
            ) from exc
        except httpx.TransportError as exc:
            if stamp:  # sent, never answered: the server may have counted it until now
                limiter.answered(stamp.pop())
            trace.unanswered_attempts += 1
            self._log(method, path, type(exc).__name__, trace.attempts, start)
            if not repeatable:
                raise self._unknown(method, path, type(exc).__name__, phone_number) from exc
            timed_out = isinstance(exc, httpx.TimeoutException)
            cls = PlivoTimeoutError if timed_out else PlivoConnectionError
            raise cls(
                f"{method} {path}: no answer ({type(exc).__name__})",
                method=method,
                path=path,
                phone_number=phone_number,
            ) from exc
        self._log(method, path, response.status_code, trace.attempts, start)
        if response.is_success:
            return response
        error = error_for_status(
            response.status_code,
            api_error_message(response.content, self._secrets),
            method=method,
            path=path,
            phone_number=phone_number,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
        if isinstance(error, RateLimitedError):
            self._limiter.rate_limited()
        if isinstance(error, ServerError):
            trace.unanswered_attempts += 1
            if not repeatable:
                raise self._unknown(
                    method, path, f"HTTP {response.status_code}", phone_number, response.status_code
                )
        raise error

    async def _grant(
        self,
        priority: Priority,
        send_by: float | None,
        method: str,
        path: str,
        phone_number: str | None,
    ) -> float:
        if send_by is None:
            return await self._limiter.acquire(priority)
        try:
            left = send_by - time.monotonic()
            if left <= 0:
                raise TimeoutError
            async with asyncio.timeout(left):
                return await self._limiter.acquire(priority)
        except TimeoutError:
            raise self._not_sent(method, path, phone_number) from None

    @staticmethod
    def _not_sent(method: str, path: str, phone_number: str | None) -> NotSentError:
        return NotSentError(
            f"{method} {path}: not sent, its send deadline passed",
            method=method,
            path=path,
            phone_number=phone_number,
        )

    @staticmethod
    def _unknown(
        method: str, path: str, what: str, phone_number: str | None, status: int | None = None
    ) -> PlivoError:
        return OutcomeUnknownError(
            f"{method} {path}: {what} after the request was sent; an OTP may have gone to "
            f"{phone_number}. Do not initiate again before resolving it (GET the number, and wait "
            "out the 15-minute window)",
            status_code=status,
            method=method,
            path=path,
            phone_number=phone_number,
        )

    @staticmethod
    def _log(method: str, path: str, status: int | str, attempt: int, start: float) -> None:
        elapsed = time.monotonic() - start
        level = logging.DEBUG if isinstance(status, int) and status < 400 else logging.INFO
        logger.log(
            level,
            "%s %s -> %s attempt=%d elapsed=%.3fs",
            method,
            path,
            status,
            attempt,
            elapsed,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "attempt": attempt,
                "elapsed_s": round(elapsed, 4),
            },
        )
