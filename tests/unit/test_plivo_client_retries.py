"""PlivoClient retries over httpx.MockTransport: what is repeated, what never is."""

from __future__ import annotations

import httpx
import pytest

from callerid.plivo import (
    InvalidOtpError,
    OutcomeUnknownError,
    PlivoConnectionError,
    PlivoTimeoutError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
)
from tests.plivo_fakes import (
    CALLER,
    NUMBER,
    RecordingLimiter,
    Reply,
    Server,
    client,
    err,
    ok,
)


@pytest.mark.parametrize(
    ("replies", "sent"),
    [
        ([err(429, "too many requests"), ok({"verification_uuid": "u"}, 201)], 2),
        ([httpx.ConnectError("refused"), ok({"verification_uuid": "u"}, 201)], 2),
        ([httpx.ConnectTimeout("slow"), ok({"verification_uuid": "u"}, 201)], 2),
    ],
)
async def test_initiate_is_repeated_only_where_no_otp_can_have_gone(
    replies: list[Reply], sent: int
) -> None:
    server = Server(*replies)
    async with client(server) as c:
        assert (await c.initiate(NUMBER)).verification_uuid == "u"
    assert len(server.requests) == sent


@pytest.mark.parametrize(
    "reply",
    [
        httpx.ReadTimeout("no answer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        err(500, "internal error"),
        err(503, "unavailable"),
        ok({"message": "sent but no uuid"}, 201),
        httpx.Response(201, content=b"<html>"),
    ],
)
async def test_initiate_outcome_unknown_is_never_resent(reply: Reply) -> None:
    server = Server(reply, ok({"verification_uuid": "second"}, 201))
    async with client(server) as c:
        with pytest.raises(OutcomeUnknownError) as caught:
            await c.initiate(NUMBER)
    assert len(server.requests) == 1
    assert caught.value.phone_number == NUMBER


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (err(500, "boom"), ServerError),
        (err(502, "bad gateway"), ServerError),
        (httpx.ReadTimeout("slow"), PlivoTimeoutError),
        (httpx.RemoteProtocolError("dropped"), PlivoConnectionError),
        (httpx.ConnectError("refused"), PlivoConnectionError),
    ],
)
async def test_repeatable_calls_retry_then_give_up(reply: Reply, error: type[Exception]) -> None:
    server = Server(reply, ok(CALLER))
    async with client(server) as c:
        assert (await c.get(NUMBER)).phone_number == NUMBER
    assert len(server.requests) == 2
    failing = Server(reply)
    async with client(failing, max_attempts=3) as c:
        with pytest.raises(error):
            await c.get(NUMBER)
    assert len(failing.requests) == 3


@pytest.mark.parametrize(("max_attempts", "sent"), [(None, 2), (4, 4)])
async def test_the_retry_policys_max_attempts_holds_unless_overridden(
    max_attempts: int | None, sent: int
) -> None:
    server = Server(err(500, "boom"))
    policy = RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.002)
    override = {} if max_attempts is None else {"max_attempts": max_attempts}
    async with client(server, retry_policy=policy, **override) as c:
        with pytest.raises(ServerError):
            await c.get(NUMBER)
    assert len(server.requests) == sent


async def test_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    server = Server(err(429, "slow down", **{"Retry-After": "3600"}))
    async with client(server) as c:
        with pytest.raises(RateLimitedError) as caught:
            await c.get(NUMBER)
    assert len(server.requests) == 1
    assert caught.value.retry_after == 3600.0


async def test_retry_after_is_waited_for() -> None:
    import time

    server = Server(err(429, "slow down", **{"Retry-After": "0.3"}), ok(CALLER))
    async with client(server) as c:
        start = time.monotonic()
        await c.get(NUMBER)
    assert time.monotonic() - start >= 0.3
    assert len(server.requests) == 2


async def test_client_errors_are_not_retried() -> None:
    server = Server(err(400, "invalid otp"))
    async with client(server) as c:
        with pytest.raises(InvalidOtpError, match="invalid otp"):
            await c.complete("uuid-1", "1234")
    assert len(server.requests) == 1


async def test_a_429_is_reported_to_the_limiter() -> None:
    limiter = RecordingLimiter()
    async with client(Server(err(429, "too many requests"), ok(CALLER)), limiter=limiter) as c:
        await c.get(NUMBER)
    assert limiter.rate_limits == 1


FAST_429 = RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.004, rate_limited_deadline_s=60)


@pytest.mark.parametrize("call", ["get", "initiate", "list"])
async def test_a_429_burst_is_waited_out_whatever_max_attempts(call: str) -> None:
    """A 429 means "wait": twelve in a row do not end a request allowed two failed attempts."""
    burst = [err(429, "too many requests")] * 12
    answer = {
        "get": ok(CALLER),
        "initiate": ok({"verification_uuid": "u"}, 201),
        "list": ok({"meta": {"total_count": 0, "limit": 20, "offset": 0}, "objects": []}),
    }[call]
    server = Server(*burst, answer)
    async with client(server, retry_policy=FAST_429) as c:
        if call == "get":
            await c.get(NUMBER)
        elif call == "initiate":
            await c.initiate(NUMBER)
        else:
            assert [item async for item in c.list()] == []
    assert len(server.requests) == 13


async def test_429s_end_when_the_deadline_would_pass() -> None:
    server = Server(err(429, "too many requests"))  # for ever
    policy = RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.004, rate_limited_deadline_s=0.2)
    async with client(server, retry_policy=policy) as c:
        with pytest.raises(RateLimitedError):
            await c.get(NUMBER)
    assert len(server.requests) > 2  # beyond max_attempts, up to the deadline


async def test_other_failures_still_count_against_max_attempts_among_429s() -> None:
    server = Server(err(500, "boom"), err(429, "slow"), err(429, "slow"), err(500, "boom"))
    async with client(server, retry_policy=FAST_429) as c:
        with pytest.raises(ServerError):
            await c.get(NUMBER)
    assert len(server.requests) == 4


def test_the_deadline_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLERID_RATE_LIMITED_DEADLINE_S", "42")
    c = client(Server(ok(CALLER)), retry_policy=None)
    assert c._transport._policy.rate_limited_deadline_s == 42.0
