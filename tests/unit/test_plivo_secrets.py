"""The auth token and OTP codes never show in exceptions (str, repr, pickle), reprs or logs."""

from __future__ import annotations

import base64
import logging
import pickle

import httpx
import pytest

from callerid.plivo import PlivoClient, PlivoError, RateLimiter, RetryPolicy

AUTH_ID = "MASECRETSTEST0000001"
TOKEN = "s3cr3t-token-value"
OTP = "482193"
NUMBER = "+14155550123"
FORBIDDEN = [TOKEN, OTP, base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()]


def leaks(text: str) -> list[str]:
    return [secret for secret in FORBIDDEN if secret in text]


def server(request: httpx.Request) -> httpx.Response:
    if "Verification/timeout" in request.url.path:
        raise httpx.ReadTimeout(f"timed out sending {request.content!r}")
    if "Verification" in request.url.path:
        # a careless server that echoes the code it was sent
        return httpx.Response(400, json={"error": f"invalid otp {OTP} for {NUMBER}"})
    if request.method == "POST":
        return httpx.Response(503, text=f"upstream said: token {TOKEN}? code {OTP}")
    return httpx.Response(404, json={"error": {"error": "not found"}})


async def test_no_secret_in_exceptions_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    caught: list[PlivoError] = []
    c = PlivoClient(
        AUTH_ID,
        TOKEN,
        "http://plivo.test",
        limiter=RateLimiter(1000, 1.0),
        max_attempts=2,
        retry_policy=RetryPolicy(base_s=0.001, cap_s=0.002),
        transport=httpx.MockTransport(server),
    )
    async with c:
        for call in (
            lambda: c.complete("uuid-1", OTP),
            lambda: c.complete("timeout", OTP),
            lambda: c.complete("timeout", OTP, phone_number=NUMBER),
            lambda: c.initiate(NUMBER),
            lambda: c.get(NUMBER),
        ):
            with pytest.raises(PlivoError) as info:
                await call()
            caught.append(info.value)
        with pytest.raises(ValueError) as bad_otp:
            await c.complete("uuid-1", "12x4567")
        assert "12x4567" not in str(bad_otp.value)
        assert leaks(repr(c)) == [] and leaks(str(c)) == []

    assert len(caught) == 5
    for exc in caught:
        assert leaks(str(exc)) == [], exc
        assert leaks(repr(exc)) == [], exc
        assert leaks(repr(vars(exc))) == [], exc
        assert leaks(pickle.dumps(exc).decode("latin-1")) == [], exc
    assert any("****" in str(exc) for exc in caught)  # the echoed code was masked, not dropped
    assert caplog.records, "the client logs its requests"
    for record in caplog.records:
        assert leaks(record.getMessage()) == [], record.getMessage()
        assert leaks(repr(vars(record))) == [], record.getMessage()


def echoing_server(request: httpx.Request) -> httpx.Response:
    """A server whose error texts repeat the credentials it was sent."""
    header = request.headers["authorization"]
    if request.method == "GET":
        return httpx.Response(500, text=f"auth {header} rejected upstream (token {TOKEN})")
    return httpx.Response(400, json={"error": {"error": f"bad token {TOKEN!r}; sent {header}"}})


async def test_the_clients_own_credentials_are_masked_in_api_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    c = PlivoClient(
        AUTH_ID,
        TOKEN,
        "http://plivo.test",
        limiter=RateLimiter(1000, 1.0),
        retry_policy=RetryPolicy(max_attempts=2, base_s=0.001, cap_s=0.002),
        transport=httpx.MockTransport(echoing_server),
    )
    caught: list[PlivoError] = []
    async with c:
        for call in (lambda: c.get(NUMBER), lambda: c.update(NUMBER, alias="x")):
            with pytest.raises(PlivoError) as info:
                await call()
            caught.append(info.value)
    for exc in caught:
        assert "rejected upstream" in str(exc) or "bad token" in str(exc)
        for text in (str(exc), repr(exc), repr(vars(exc)), pickle.dumps(exc).decode("latin-1")):
            assert leaks(text) == [], text
        assert "****" in str(exc)  # masked, not dropped
    for record in caplog.records:
        assert leaks(record.getMessage()) == [], record.getMessage()
