"""Contract: PlivoClient against the sandbox over real HTTP on 127.0.0.1 (plivo-api.md §0, §1):
every operation, every error of §0, paging, and no secrets in the logs.

OTPs, the clock and faults are reached through the sandbox's own HTTP control routes, as any
out-of-process test would.
"""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from callerid.plivo import (
    AlreadyVerifiedError,
    AuthenticationError,
    InvalidOtpError,
    NotFoundError,
    OtpAttemptsExceededError,
    PlivoClient,
    RateLimiter,
    VerificationExpiredError,
    VerificationNotFoundError,
)
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer
from tests.plivo_contract_support import (  # *_fixture: pytest finds them by their names
    FAST_RETRIES,
    NUMBER,
    client_fixture,  # noqa: F401
    control,
    otp_of,
    sandbox_fixture,  # noqa: F401
    server_fixture,  # noqa: F401
    stats,
)


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
    before = stats(sandbox)["total_requests"]
    for bad in ({"limit": 21}, {"limit": 0}, {"offset": -1}):
        with pytest.raises(ValueError):
            await client.list_page(**bad)
    assert stats(sandbox)["total_requests"] == before  # §0: never sent


@pytest.mark.parametrize("via", ["lean", "httpx"])
async def test_no_token_or_otp_in_logs_over_real_http(
    caplog: pytest.LogCaptureFixture, via: str
) -> None:
    """Both paths: the lean HTTP/1.1 pool (the default) and httpx (used behind a proxy)."""
    # 8-digit codes: long enough that finding one in the logs cannot be a coincidence
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore
    transport = httpx.AsyncHTTPTransport() if via == "httpx" else None
    with SandboxServer(SandboxBackend(seed=9, otp_digits=8), reply_delay_s=3600) as box:
        async with PlivoClient(
            DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, box.url, limiter=RateLimiter(), transport=transport
        ) as c:
            started = await c.initiate(NUMBER)
            otp = box.backend.otp_for(started.verification_uuid)
            wrong = "12345678" if otp != "12345678" else "87654321"
            with pytest.raises(InvalidOtpError):
                await c.complete(started.verification_uuid, wrong)
            assert (await c.complete(started.verification_uuid, otp)).phone_number == NUMBER
    basic = base64.b64encode(f"{DEFAULT_AUTH_ID}:{DEFAULT_AUTH_TOKEN}".encode()).decode()
    text = "\n".join(f"{r.getMessage()} {vars(r)!r}" for r in caplog.records)
    expected = {"callerid.plivo", "httpx"} if via == "httpx" else {"callerid.plivo"}
    assert expected <= {r.name for r in caplog.records}
    for secret in (DEFAULT_AUTH_TOKEN, basic, otp, wrong):
        assert secret not in text
