"""PlivoClient over httpx.MockTransport: wire format, configuration, outcome rules."""

from __future__ import annotations

import base64
import logging
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
    Priority,
    RateLimiter,
    UnexpectedResponseError,
)
from tests.plivo_fakes import (
    AUTH_ID,
    CALLER,
    NUMBER,
    ROOT,
    TOKEN,
    RecordingLimiter,
    Reply,
    Server,
    client,
    err,
    ok,
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


def test_default_limiter_follows_the_rate_limit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from callerid.plivo import limiter_for

    monkeypatch.setenv("CALLERID_RATE_LIMIT_REQUESTS", "120")
    monkeypatch.setenv("CALLERID_RATE_LIMIT_PERIOD_S", "2.5")
    client = PlivoClient("MASETTINGSLIMITER001", "token", "http://plivo.test")
    assert (client.limiter.max_requests, client.limiter.period_s) == (120, 2.5)
    # what reconcile/pipeline/tasks do afterwards with the same settings: the same limiter
    assert limiter_for("MASETTINGSLIMITER001", 120, 2.5) is client.limiter
    # and in the other order: the client picks up what they registered, without raising
    registered = limiter_for("MASETTINGSLIMITER002", 120, 2.5)
    assert PlivoClient("MASETTINGSLIMITER002", "token").limiter is registered


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
