"""Fakes for the Plivo client's unit tests: a scripted server for httpx.MockTransport and a
limiter that remembers priorities."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from callerid.plivo import PlivoClient, Priority, RateLimiter, RetryPolicy

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
        self.rate_limits = 0

    def rate_limited(self) -> None:
        self.rate_limits += 1
        super().rate_limited()

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
