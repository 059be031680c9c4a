"""Contract, failure paths: PlivoClient against the sandbox over real HTTP on 127.0.0.1 with
faults queued through `POST /_sandbox/faults`: 429s, 5xx, dropped and unanswered requests.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from callerid.plivo import (
    OutcomeUnknownError,
    PlivoClient,
    PlivoConnectionError,
    Priority,
    RateLimiter,
    RetryPolicy,
)
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer
from tests.plivo_contract_support import (  # *_fixture: pytest finds them by their names
    FAST_RETRIES,
    NUMBER,
    client_fixture,  # noqa: F401
    control,
    number_stats,
    otp_of,
    sandbox_fixture,  # noqa: F401
    server_fixture,  # noqa: F401
    stats,
)


async def test_429s_are_retried_until_they_succeed() -> None:
    backend = SandboxBackend(seed=5, rate=(10, 1.0))
    with SandboxServer(backend, reply_delay_s=3600) as box:
        backend.seed_verified(NUMBER)
        # the client's limiter allows 4x what the sandbox does, so 429s must happen
        async with PlivoClient(
            DEFAULT_AUTH_ID,
            DEFAULT_AUTH_TOKEN,
            box.url,
            limiter=RateLimiter(40, 1.0),
            max_attempts=8,
            retry_policy=RetryPolicy(base_s=0.2, cap_s=1.0),
        ) as c:
            results = await asyncio.gather(*(c.get(NUMBER) for _ in range(30)))
        seen = box.backend.stats()
    assert all(r.phone_number == NUMBER for r in results)
    assert seen["rate_limited"] > 0
    assert seen["total_requests"] == 30 + seen["rate_limited"]


async def test_5xx_is_retried_for_reads(client: PlivoClient, sandbox: SandboxServer) -> None:
    control(sandbox, "POST", "caller_ids", phone_number=NUMBER)
    control(sandbox, "POST", "faults", kind="status", status=503, count=2, operation="get")
    assert (await client.get(NUMBER)).phone_number == NUMBER
    seen = stats(sandbox)
    assert (seen["faults_injected"], seen["total_requests"]) == (2, 3)


async def test_5xx_on_initiate_is_outcome_unknown_and_not_resent(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    control(sandbox, "POST", "faults", kind="status", status=500, operation="initiate")
    with pytest.raises(OutcomeUnknownError) as info:
        await client.initiate(NUMBER)
    assert info.value.phone_number == NUMBER and info.value.status_code == 500
    assert stats(sandbox)["total_requests"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "timeout_after_processing", "operation": "initiate"},
        {"kind": "drop", "operation": "initiate"},
    ],
)
async def test_initiate_without_an_answer_is_outcome_unknown(
    sandbox: SandboxServer, fault: dict[str, Any]
) -> None:
    control(sandbox, "POST", "faults", **fault)
    async with PlivoClient(
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        sandbox.url,
        limiter=RateLimiter(),
        timeout=0.5,
        retry_policy=FAST_RETRIES,
    ) as c:
        with pytest.raises(OutcomeUnknownError) as info:
            await c.initiate(NUMBER)
    assert info.value.phone_number == NUMBER
    assert stats(sandbox)["total_requests"] == 1  # never re-POSTed
    sent = number_stats(sandbox).get("initiations", 0)
    assert sent == (1 if fault["kind"] == "timeout_after_processing" else 0)


async def test_complete_that_timed_out_after_succeeding_is_resolved(
    sandbox: SandboxServer,
) -> None:
    async with PlivoClient(
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        sandbox.url,
        limiter=RateLimiter(),
        timeout=0.5,
        retry_policy=FAST_RETRIES,
    ) as c:
        started = await c.initiate(NUMBER)
        otp = otp_of(sandbox, started.verification_uuid)
        control(sandbox, "POST", "faults", kind="timeout_after_processing", operation="complete")
        caller = await c.complete(started.verification_uuid, otp, phone_number=NUMBER)
    assert caller.verification_uuid == started.verification_uuid
    assert number_stats(sandbox) == {"initiations": 1, "completion_attempts": 2, "completions": 1}


async def test_connection_refused_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with PlivoClient(
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        f"http://127.0.0.1:{port}",
        limiter=RateLimiter(),
        max_attempts=2,
        retry_policy=FAST_RETRIES,
    ) as c:
        with pytest.raises(PlivoConnectionError, match="could not connect"):
            await c.initiate(NUMBER)  # never sent, so retrying was allowed and it is no "unknown"


async def test_requests_are_counted_from_when_they_reach_the_wire(
    sandbox: SandboxServer,
) -> None:
    class WatchedLimiter(RateLimiter):
        def __init__(self) -> None:
            super().__init__(300, 5.0)
            self.grants: list[float] = []
            self.on_wire: list[float] = []
            self.answers: list[float] = []

        async def acquire(self, priority: Priority = Priority.NORMAL) -> float:
            granted = await super().acquire(priority)
            self.grants.append(granted)
            return granted

        def sent(self, granted_at: float, at: float | None = None) -> float:
            self.on_wire.append(granted_at)
            return super().sent(granted_at, at)

        def answered(self, stamp: float, at: float | None = None) -> float:
            self.answers.append(stamp)
            return super().answered(stamp, at)

    limiter = WatchedLimiter()
    control(sandbox, "POST", "caller_ids", phone_number=NUMBER)
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox.url, limiter=limiter) as c:
        await asyncio.gather(*(c.get(NUMBER) for _ in range(5)))
    assert len(limiter.grants) == 5
    assert sorted(limiter.on_wire) == sorted(limiter.grants)
    assert len(limiter.answers) == 5  # each answer reported once, from its on-wire stamp
    assert all(a >= g for a, g in zip(sorted(limiter.answers), sorted(limiter.grants), strict=True))


async def test_a_request_held_up_on_its_way_counts_from_later(sandbox: SandboxServer) -> None:
    class WatchedLimiter(RateLimiter):
        def __init__(self) -> None:
            super().__init__(300, 5.0)
            self.moved: list[float] = []

        def answered(self, stamp: float, at: float | None = None) -> float:
            new = super().answered(stamp, at)
            self.moved.append(new - stamp)
            return new

    limiter = WatchedLimiter()
    control(sandbox, "POST", "caller_ids", phone_number=NUMBER)
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox.url, limiter=limiter) as c:
        for _ in range(5):
            await c.get(NUMBER)  # quick round trips: the floor
        control(sandbox, "POST", "faults", kind="latency", latency_ms=800, operation="get")
        await c.get(NUMBER)  # held 800 ms before the sandbox looks at it
    assert len(limiter.moved) == 6
    assert max(limiter.moved[:5]) < 0.5
    assert limiter.moved[5] >= 0.6  # counted as late as the server may have counted it
