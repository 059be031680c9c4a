"""PlivoClient over httpx.MockTransport: wire format, configuration, retries, outcome rules."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from callerid.plivo import (
    AlreadyVerifiedError,
    AuthenticationError,
    CallerId,
    InvalidOtpError,
    NotFoundError,
    OutcomeUnknownError,
    PlivoClient,
    PlivoConnectionError,
    PlivoTimeoutError,
    Priority,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
    ServerError,
    UnexpectedResponseError,
)

AUTH_ID = "MAUNITTESTACCOUNT001"
TOKEN = "unit-test-secret-token"
ROOT = f"/v1/Account/{AUTH_ID}/VerifiedCallerId"
NUMBER = "+14155550123"
CALLER = {
    "alias": "a",
    "api_id": "x",
    "country": "US",
    "created_at": "2023-09-25T13:10:39.968133341Z",
    "modified_at": "2023-09-25T13:10:39.968133341Z",
    "phone_number": NUMBER,
    "subaccount": "",
    "verification_uuid": "uuid-1",
}

Reply = httpx.Response | Exception


class RecordingLimiter(RateLimiter):
    """A real limiter (generous) that also remembers the priority of each acquisition."""

    def __init__(self) -> None:
        super().__init__(10_000, 1.0)
        self.priorities: list[Priority] = []

    async def acquire(self, priority: Priority = Priority.NORMAL) -> float:
        self.priorities.append(priority)
        return await super().acquire(priority)


class Server:
    """Answers requests from a script of replies; records every request it saw."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def json(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


def ok(body: dict[str, Any], status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def err(status: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"api_id": "x", "error": message}, headers=headers)


def client(server: Callable[[httpx.Request], httpx.Response], **kw: Any) -> PlivoClient:
    kw.setdefault("limiter", RecordingLimiter())
    kw.setdefault("retry_policy", RetryPolicy(base_s=0.001, cap_s=0.004))
    return PlivoClient(
        AUTH_ID, TOKEN, "http://plivo.test", transport=httpx.MockTransport(server), **kw
    )


async def test_initiate_wire_format_and_result() -> None:
    server = Server(ok({"api_id": "a", "message": "sent", "verification_uuid": "u-1"}, 201))
    async with client(server) as c:
        started = await c.initiate("14155550123", alias="front desk", channel="CALL")
    request = server.requests[0]
    assert (request.method, request.url.path) == ("POST", f"{ROOT}/")
    assert server.json() == {"phone_number": NUMBER, "channel": "call", "alias": "front desk"}
    assert request.headers["content-type"] == "application/json"
    expected = base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert started.verification_uuid == "u-1" and started.phone_number == NUMBER


async def test_every_operation_uses_the_documented_path() -> None:
    page = {"meta": {"limit": 20, "offset": 0, "total_count": 1}, "objects": [CALLER]}
    server = Server(ok(CALLER), ok(CALLER), ok(CALLER), ok(page), httpx.Response(204))
    limiter = RecordingLimiter()
    async with client(server, limiter=limiter) as c:
        assert (await c.complete("uuid-1", "4821")).verification_uuid == "uuid-1"
        assert (await c.get(NUMBER)).alias == "a"
        await c.update(NUMBER, alias="b", subaccount="SAMTU0Y2FKNGETYZDKNI")
        assert [x.phone_number async for x in c.list(country="US")] == [NUMBER]
        await c.delete(NUMBER)
    seen = [(r.method, r.url.path) for r in server.requests]
    assert seen == [
        ("POST", f"{ROOT}/Verification/uuid-1/"),
        ("GET", f"{ROOT}/14155550123/"),
        ("POST", f"{ROOT}/14155550123/"),
        ("GET", f"{ROOT}/"),
        ("DELETE", f"{ROOT}/14155550123/"),
    ]
    assert server.json(0) == {"otp": "4821"}
    assert server.json(2) == {"alias": "b", "subaccount": "SAMTU0Y2FKNGETYZDKNI"}
    assert dict(server.requests[3].url.params) == {"limit": "20", "offset": "0", "country": "US"}
    assert limiter.priorities[0] is Priority.HIGH  # the completion
    assert set(limiter.priorities[1:]) == {Priority.NORMAL}


def test_configuration_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLIVO_AUTH_ID", "MAFROMENVIRONMENT001")
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "env-token")
    monkeypatch.setenv("PLIVO_API_URL", "http://env.example/")
    from_env = PlivoClient(limiter=RateLimiter())
    assert (from_env.auth_id, from_env.base_url) == ("MAFROMENVIRONMENT001", "http://env.example")
    explicit = PlivoClient("MAEXPLICIT0000000001", "t", "http://arg.example", limiter=RateLimiter())
    assert (explicit.auth_id, explicit.base_url) == ("MAEXPLICIT0000000001", "http://arg.example")
    monkeypatch.delenv("PLIVO_API_URL")
    assert PlivoClient(limiter=RateLimiter()).base_url == "https://api.plivo.com"
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", "")
    with pytest.raises(AuthenticationError, match="PLIVO_AUTH_TOKEN"):
        PlivoClient()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.initiate("12"), "E.164"),
        (lambda c: c.initiate(NUMBER, channel="fax"), "channel"),
        (lambda c: c.complete("uuid-1", "12ab"), "otp"),
        (lambda c: c.complete("../etc", "1234"), "verification_uuid"),
        (lambda c: c.update(NUMBER), "alias or a subaccount"),
        (lambda c: c.list_page(limit=21), "limit"),
        (lambda c: c.list_page(limit=0), "limit"),
        (lambda c: c.list_page(offset=-1), "offset"),
    ],
)
async def test_bad_input_is_refused_before_sending(call: Any, message: str) -> None:
    server = Server(ok(CALLER))
    async with client(server) as c:
        with pytest.raises(ValueError, match=message):
            await call(c)
    assert server.requests == []


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
        (err(429, "too many requests"), RateLimitedError),
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


async def test_retried_complete_that_already_succeeded_is_resolved_by_get() -> None:
    server = Server(
        httpx.ReadTimeout("slow"), err(400, "phone number is already verified"), ok(CALLER)
    )
    async with client(server) as c:
        caller = await c.complete("uuid-1", "4821", phone_number=NUMBER)
    assert isinstance(caller, CallerId) and caller.verification_uuid == "uuid-1"
    assert [r.method for r in server.requests] == ["POST", "POST", "GET"]


async def test_retried_complete_without_number_reports_outcome_unknown() -> None:
    server = Server(err(503, "busy"), err(404, "verification not found"))
    async with client(server) as c:
        with pytest.raises(OutcomeUnknownError, match="GET the number"):
            await c.complete("uuid-1", "4821")


async def test_retried_complete_that_really_failed_raises_the_real_error() -> None:
    server = Server(httpx.ReadTimeout("slow"), err(400, "invalid otp"), err(404, "not found"))
    async with client(server) as c:
        with pytest.raises(InvalidOtpError):
            await c.complete("uuid-1", "4821", phone_number=NUMBER)


async def test_second_complete_without_earlier_timeout_is_reported_as_is() -> None:
    server = Server(err(400, "phone number is already verified"))
    async with client(server) as c:
        with pytest.raises(AlreadyVerifiedError):
            await c.complete("uuid-1", "4821", phone_number=NUMBER)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("replies", "missing_ok", "raises"),
    [
        ([httpx.Response(204)], False, None),
        ([err(404, "not found")], False, NotFoundError),
        ([err(404, "not found")], True, None),
        ([httpx.ReadTimeout("slow"), err(404, "not found")], False, None),
        ([err(500, "boom"), err(404, "not found")], False, None),
    ],
)
async def test_delete_outcomes(
    replies: list[Reply], missing_ok: bool, raises: type[Exception] | None
) -> None:
    async with client(Server(*replies)) as c:
        if raises is None:
            assert await c.delete(NUMBER, missing_ok=missing_ok) is None
        else:
            with pytest.raises(raises):
                await c.delete(NUMBER, missing_ok=missing_ok)


async def test_list_walks_every_page_by_offset() -> None:
    numbers = [f"+1415555{i:04d}" for i in range(45)]

    def server(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        objects = [{"phone_number": n} for n in numbers[offset : offset + limit]]
        meta = {"limit": limit, "offset": offset, "total_count": len(numbers)}
        return ok({"meta": meta, "objects": objects})

    async with client(server) as c:
        seen = [x.phone_number async for x in c.list()]
        page = await c.list_page(limit=5, offset=40)
    assert seen == numbers
    assert [x.phone_number for x in page.items] == numbers[40:]


async def test_list_yields_a_number_once_when_the_list_shifts() -> None:
    pages = [
        ["+14155550001", "+14155550002"],
        ["+14155550002", "+14155550003"],  # a new number arrived at the top meanwhile
    ]

    def server(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        objects = [{"phone_number": n} for n in pages[offset // 2]]
        return ok({"meta": {"limit": 2, "offset": offset, "total_count": 4}, "objects": objects})

    async with client(server) as c:
        # page size is fixed at 20; the fake server answers 2 a page
        seen = [x.phone_number async for x in c.list()]
    assert seen == ["+14155550001", "+14155550002", "+14155550003"]


async def test_each_attempt_is_logged_with_its_facts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="callerid.plivo")
    async with client(Server(err(503, "busy"), ok(CALLER))) as c:
        await c.get(NUMBER)
    attempts = [r for r in caplog.records if hasattr(r, "status")]
    assert [(r.method, r.path, r.status, r.attempt) for r in attempts] == [  # type: ignore[attr-defined]
        ("GET", f"{ROOT}/14155550123/", 503, 1),
        ("GET", f"{ROOT}/14155550123/", 200, 2),
    ]
    assert all(r.elapsed_s >= 0 for r in attempts)  # type: ignore[attr-defined]
    assert any("retrying" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "reply", [httpx.Response(200, content=b"not json"), ok({"alias": "no phone number"})]
)
async def test_a_malformed_success_is_unexpected_response(reply: httpx.Response) -> None:
    async with client(Server(reply)) as c:
        with pytest.raises(UnexpectedResponseError):
            await c.get(NUMBER)
