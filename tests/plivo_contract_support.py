"""Shared pieces of the client contract tests: a sandbox on a free 127.0.0.1 port, a client for
it, and the sandbox's HTTP control routes (clock, faults, messages, stats)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from callerid.plivo import (
    PlivoClient,
    RateLimiter,
    RetryPolicy,
)
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

NUMBER = "+14155550123"
FAST_RETRIES = RetryPolicy(base_s=0.01, cap_s=0.05)


@pytest.fixture(scope="module", name="server")
def server_fixture() -> Iterator[SandboxServer]:
    with SandboxServer(
        SandboxBackend(seed=7, rate=(100_000, 1.0), subaccounts=DEFAULT_SUBACCOUNTS),
        reply_delay_s=3600,
    ) as running:
        yield running


@pytest.fixture(name="sandbox")
def sandbox_fixture(server: SandboxServer) -> SandboxServer:
    httpx.post(f"{server.url}/_sandbox/reset").raise_for_status()
    return server


@pytest.fixture(name="client")
async def client_fixture(sandbox: SandboxServer) -> AsyncIterator[PlivoClient]:
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
