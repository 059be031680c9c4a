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
