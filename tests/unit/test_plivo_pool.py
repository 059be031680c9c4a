"""The client's connection pool is sized from what its limiter lets be in flight, with a cap
(issue 14: sized from the rate, an unthrottled limiter meant a pool of 20,000 connections)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from callerid.plivo import PlivoClient, RateLimiter
from callerid.plivo._transport import LANE_SIZE, POOL_MAX, POOL_MIN, Transport, pool_limits
from callerid.plivo._wire import WirePool
from callerid.plivo.retry import RetryPolicy


@pytest.mark.parametrize(
    ("max_requests", "period_s", "size"),
    [
        (10, 5.0, POOL_MIN),  # 1 burst + 1 per half second: the floor
        (60, 5.0, 3 + 6),  # burst 3, 11.8/s for half a second
        (300, 5.0, POOL_MAX),  # burst 15 + 30: capped
        (100_000, 5.0, POOL_MAX),  # unthrottled: capped, not 20,000
    ],
)
def test_the_pool_follows_the_limiters_concurrency(
    max_requests: int, period_s: float, size: int
) -> None:
    limits = pool_limits(RateLimiter(max_requests, period_s))
    assert limits.max_connections == limits.max_keepalive_connections == size


@pytest.mark.parametrize(
    ("max_requests", "lanes"),
    [(100_000, [LANE_SIZE] * (POOL_MAX // LANE_SIZE)), (60, [LANE_SIZE, LANE_SIZE, 1])],
)
def test_behind_a_proxy_the_client_uses_httpx_in_lanes(
    max_requests: int, lanes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy in the environment: httpx (which speaks to proxies), its pool split into lanes of
    at most LANE_SIZE connections (httpcore scans a pool per request)."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    async def pool_sizes() -> list[int]:
        limiter = RateLimiter(max_requests, 5.0)
        async with PlivoClient(
            "MAXXXXXXXXXXXXXXXXXX", "t", "http://plivo.test:9", limiter=limiter
        ) as c:
            return [
                int(lane.http._transport._pool._max_connections)  # type: ignore[union-attr]
                for lane in c._transport._lanes
            ]

    assert asyncio.run(pool_sizes()) == lanes


@pytest.mark.parametrize(("max_requests", "size"), [(100_000, POOL_MAX), (60, 9)])
def test_without_a_proxy_the_client_uses_one_lean_pool_of_that_size(
    max_requests: int, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No proxy named (or the API's host in NO_PROXY): the lean HTTP/1.1 pool (_wire.py), one
    lane of the limiter's concurrency, and the transport lets in as many requests at once."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    async def pools() -> tuple[list[object], int]:
        limiter = RateLimiter(max_requests, 5.0)
        async with PlivoClient(
            "MAXXXXXXXXXXXXXXXXXX", "t", "http://127.0.0.1:9", limiter=limiter
        ) as c:
            lanes = c._transport._lanes
            return [type(lane) for lane in lanes], c._transport._gate._value

    kinds, gate = asyncio.run(pools())
    assert kinds == [WirePool]
    assert gate == size


def test_requests_spread_over_the_lanes_and_never_queue_in_one() -> None:
    """Each request takes the least busy lane: no lane holds more than its connections."""
    seen: dict[str, int] = {}
    most = 0

    async def burst() -> None:
        nonlocal most
        limiter = RateLimiter(100_000, 5.0)
        lanes = [
            httpx.AsyncClient(base_url=f"http://lane{i}.test", transport=httpx.MockTransport(slow))
            for i in range(POOL_MAX // LANE_SIZE)
        ]
        transport = Transport(lanes, limiter, RetryPolicy())
        await asyncio.gather(*(transport.send("GET", f"/n/{i}") for i in range(200)))
        await transport.aclose()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal most
        host = request.url.host
        seen[host] = seen.get(host, 0) + 1
        most = max(most, seen[host])
        await asyncio.sleep(0.01)
        seen[host] -= 1
        return httpx.Response(200, json={})

    asyncio.run(burst())
    assert most == LANE_SIZE
    assert len(seen) == POOL_MAX // LANE_SIZE


def test_requests_beyond_the_pool_wait_outside_it() -> None:
    """httpcore rescans every request queued in its pool on each pool event; the transport lets
    in only as many requests as the pool has connections."""
    inside = 0
    most = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        await asyncio.sleep(0.01)
        inside -= 1
        return httpx.Response(200, json={})

    async def burst() -> None:
        limiter = RateLimiter(100_000, 5.0)
        http = httpx.AsyncClient(
            base_url="http://plivo.test", transport=httpx.MockTransport(handler)
        )
        transport = Transport(http, limiter, RetryPolicy())
        await asyncio.gather(*(transport.send("GET", f"/n/{i}") for i in range(200)))
        await transport.aclose()

    asyncio.run(burst())
    assert most == POOL_MAX


def test_the_client_keeps_no_cookies_and_sends_basic_auth_on_every_request() -> None:
    """Basic auth is a fixed header; a Set-Cookie from the API is never sent back (the client
    skips httpx's cookie handling, a measurable share of its CPU per request)."""
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"phone_number": "+14155552671"}, headers={"set-cookie": "lb=1; Path=/"}
        )

    async def twice() -> None:
        async with PlivoClient(
            "MAXXXXXXXXXXXXXXXXXX",
            "t0ken",
            "http://plivo.test",
            limiter=RateLimiter(100_000, 5.0),
            transport=httpx.MockTransport(server),
        ) as c:
            await c.get("+14155552671")
            await c.get("+14155552671")

    asyncio.run(twice())
    assert [r.headers.get("cookie") for r in seen] == [None, None]
    expected = httpx.BasicAuth("MAXXXXXXXXXXXXXXXXXX", "t0ken")._auth_header
    assert [r.headers["authorization"] for r in seen] == [expected, expected]
