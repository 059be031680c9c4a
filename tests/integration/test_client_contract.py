"""Contract: PlivoClient against the sandbox over real HTTP on 127.0.0.1 (plivo-api.md §0, §1).

Faults, the clock and OTPs are reached through the sandbox's own HTTP control routes, as any
out-of-process test would.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from callerid.plivo import (
    AlreadyVerifiedError,
    AuthenticationError,
    InvalidOtpError,
    NotFoundError,
    OtpAttemptsExceededError,
    OutcomeUnknownError,
    PlivoClient,
    PlivoConnectionError,
    Priority,
    RateLimiter,
    RetryPolicy,
    VerificationExpiredError,
    VerificationNotFoundError,
)
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer

NUMBER = "+14155550123"
FAST_RETRIES = RetryPolicy(base_s=0.01, cap_s=0.05)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxBackend(seed=7, rate=(100_000, 1.0)), reply_delay_s=3600) as running:
        yield running


@pytest.fixture
def sandbox(server: SandboxServer) -> SandboxServer:
    httpx.post(f"{server.url}/_sandbox/reset").raise_for_status()
    return server


@pytest.fixture
async def client(sandbox: SandboxServer) -> AsyncIterator[PlivoClient]:
    async with PlivoClient(
        DEFAULT_AUTH_ID,
        DEFAULT_AUTH_TOKEN,
        sandbox.url,
        limiter=RateLimiter(300, 5.0),
        timeout=2.0,
        retry_policy=FAST_RETRIES,
    ) as c:
        yield c


def control(sandbox: SandboxServer, method: str, path: str, **body: Any) -> Any:
    response = httpx.request(method, f"{sandbox.url}/_sandbox/{path}", json=body or None)
    response.raise_for_status()
    return response.json()


def otp_of(sandbox: SandboxServer, uuid: str) -> str:
    messages = control(sandbox, "GET", f"messages?phone_number=%2B{NUMBER[1:]}")["messages"]
    return next(m["otp"] for m in messages if m["verification_uuid"] == uuid)


def stats(sandbox: SandboxServer) -> Any:
    return control(sandbox, "GET", "stats")


def number_stats(sandbox: SandboxServer, number: str = NUMBER) -> dict[str, int]:
    return stats(sandbox)["numbers"].get(number, {})


async def test_every_operation(client: PlivoClient, sandbox: SandboxServer) -> None:
    started = await client.initiate(NUMBER, alias="front desk")
    assert started.message and NUMBER in started.message
    caller = await client.complete(
        started.verification_uuid, otp_of(sandbox, started.verification_uuid)
    )
    assert (caller.phone_number, caller.alias, caller.country) == (NUMBER, "front desk", "US")
    assert caller.verification_uuid == started.verification_uuid and caller.created_at
    got = await client.get(NUMBER)
    assert got.verification_uuid == started.verification_uuid and got.subaccount is None
    updated = await client.update(NUMBER, alias="back office", subaccount="SASANDBOXSUBACCT0001")
    assert (updated.alias, updated.subaccount) == ("back office", "SASANDBOXSUBACCT0001")
    listed = [c async for c in client.list()]
    assert [c.phone_number for c in listed] == [NUMBER]
    assert listed[0].resource_uri == f"/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId/14155550123"
    await client.delete(NUMBER)
    with pytest.raises(NotFoundError):
        await client.get(NUMBER)
    with pytest.raises(NotFoundError):
        await client.delete(NUMBER)
    assert await client.delete(NUMBER, missing_ok=True) is None


async def test_wrong_otp_keeps_the_verification_open(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    started = await client.initiate(NUMBER)
    right = otp_of(sandbox, started.verification_uuid)
    wrong = "0000" if right != "0000" else "1111"
    with pytest.raises(InvalidOtpError) as info:
        await client.complete(started.verification_uuid, wrong)
    assert info.value.api_message == "invalid otp" and info.value.status_code == 400
    assert (await client.complete(started.verification_uuid, right)).phone_number == NUMBER


async def test_three_wrong_otps_lock_the_verification(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    started = await client.initiate(NUMBER)
    right = otp_of(sandbox, started.verification_uuid)
    wrong = "0000" if right != "0000" else "1111"
    for _ in range(3):
        with pytest.raises(InvalidOtpError):
            await client.complete(started.verification_uuid, wrong)
    with pytest.raises(OtpAttemptsExceededError):
        await client.complete(started.verification_uuid, right)


async def test_otp_after_fifteen_minutes_is_expired(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    started = await client.initiate(NUMBER)
    control(sandbox, "POST", "clock", advance_s=15 * 60 + 1)
    with pytest.raises(VerificationExpiredError):
        await client.complete(started.verification_uuid, otp_of(sandbox, started.verification_uuid))


async def test_unknown_and_superseded_verifications_are_not_found(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    with pytest.raises(VerificationNotFoundError):
        await client.complete("00000000-0000-4000-8000-000000000000", "1234")
    first = await client.initiate(NUMBER)
    second = await client.initiate(NUMBER)
    assert first.verification_uuid != second.verification_uuid
    with pytest.raises(VerificationNotFoundError):
        await client.complete(first.verification_uuid, otp_of(sandbox, first.verification_uuid))
    await client.complete(second.verification_uuid, otp_of(sandbox, second.verification_uuid))


async def test_initiate_for_a_verified_number_is_rejected(
    client: PlivoClient, sandbox: SandboxServer
) -> None:
    control(sandbox, "POST", "caller_ids", phone_number=NUMBER)
    with pytest.raises(AlreadyVerifiedError, match="already verified"):
        await client.initiate(NUMBER)
    assert (await client.get(NUMBER)).phone_number == NUMBER  # §0: GET tells the truth


async def test_unknown_number_is_not_found_for_get_update_delete(client: PlivoClient) -> None:
    for call in (client.get(NUMBER), client.update(NUMBER, alias="x"), client.delete(NUMBER)):
        with pytest.raises(NotFoundError, match="not found"):
            await call


async def test_wrong_token_is_an_authentication_error_without_retries(
    sandbox: SandboxServer,
) -> None:
    async with PlivoClient(
        DEFAULT_AUTH_ID,
        "wrong-token",
        sandbox.url,
        limiter=RateLimiter(),
        retry_policy=FAST_RETRIES,
    ) as c:
        with pytest.raises(AuthenticationError):
            await c.get(NUMBER)
    assert stats(sandbox)["total_requests"] == 1


async def test_pagination_over_47_caller_ids(client: PlivoClient, sandbox: SandboxServer) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(40)] + [f"+4420794600{i:02d}" for i in range(7)]
    control(sandbox, "POST", "caller_ids", caller_ids=[{"phone_number": n} for n in numbers])
    before = stats(sandbox)["total_requests"]
    listed = [c.phone_number async for c in client.list()]
    assert stats(sandbox)["total_requests"] - before == 3  # 20 + 20 + 7
    assert sorted(listed) == sorted(numbers) and len(set(listed)) == 47
    assert listed == list(reversed(numbers))  # newest first
    assert sorted([c.phone_number async for c in client.list(country="GB")]) == numbers[40:]
    last = await client.list_page(offset=40)
    assert (len(last.items), last.total_count, last.next) == (7, 47, None)
    assert last.previous is not None


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


async def test_no_token_or_otp_in_logs_over_real_http(caplog: pytest.LogCaptureFixture) -> None:
    # 8-digit codes: long enough that finding one in the logs cannot be a coincidence
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    with SandboxServer(SandboxBackend(seed=9, otp_digits=8), reply_delay_s=3600) as box:
        async with PlivoClient(
            DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, box.url, limiter=RateLimiter()
        ) as c:
            started = await c.initiate(NUMBER)
            otp = box.backend.otp_for(started.verification_uuid)
            wrong = "12345678" if otp != "12345678" else "87654321"
            with pytest.raises(InvalidOtpError):
                await c.complete(started.verification_uuid, wrong)
            assert (await c.complete(started.verification_uuid, otp)).phone_number == NUMBER
    basic = base64.b64encode(f"{DEFAULT_AUTH_ID}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    text = "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)
    assert {"callerid.plivo", "httpx"} <= {r.name for r in caplog.records}
    for secret in (DEFAULT_AUTH_TOKEN, basic, otp, wrong):
        assert secret not in text


async def test_requests_are_counted_from_when_they_reach_the_wire(
    sandbox: SandboxServer,
) -> None:
    class WatchedLimiter(RateLimiter):
        def __init__(self) -> None:
            super().__init__(300, 5.0)
            self.grants: list[float] = []
            self.on_wire: list[float] = []

        async def acquire(self, priority: Priority = Priority.NORMAL) -> float:
            granted = await super().acquire(priority)
            self.grants.append(granted)
            return granted

        def sent(self, granted_at: float, at: float | None = None) -> None:
            self.on_wire.append(granted_at)
            super().sent(granted_at, at)

    limiter = WatchedLimiter()
    control(sandbox, "POST", "caller_ids", phone_number=NUMBER)
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, sandbox.url, limiter=limiter) as c:
        await asyncio.gather(*(c.get(NUMBER) for _ in range(5)))
    assert len(limiter.grants) == 5
    assert sorted(limiter.on_wire) == sorted(limiter.grants)
