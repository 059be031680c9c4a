"""How each API answer maps to a number's next state (a fake client; no HTTP, no database)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from callerid.clock import SystemClock
from callerid.inbox.models import MatchedCode
from callerid.ledger.models import NumberStatus as S
from callerid.pipeline.ledger_ops import Target
from callerid.pipeline.steps import _complete_one, _initiate_one
from callerid.plivo import (
    AlreadyVerifiedError,
    AuthenticationError,
    CallerId,
    Initiation,
    InvalidOtpError,
    NotFoundError,
    NotSentError,
    OtpAttemptsExceededError,
    OutcomeUnknownError,
    PlivoConnectionError,
    RateLimitedError,
    RequestRejectedError,
    ServerError,
    VerificationExpiredError,
    VerificationNotFoundError,
)

NUMBER = "+14155550123"


class FakeClient:
    """Raises `error` from initiate/complete (or answers), and answers GET per `listed`."""

    def __init__(self, error: Exception | None, listed: bool | Exception = False) -> None:
        self.error, self.listed = error, listed
        self.gets = 0

    async def initiate(self, phone_number: str, **_: Any) -> Initiation:
        if self.error:
            raise self.error
        return Initiation(phone_number, "uuid-new", None, None)

    async def complete(self, uuid: str, otp: str, **_: Any) -> CallerId:
        if self.error:
            raise self.error
        return CallerId(NUMBER, verification_uuid=uuid)

    async def get(self, phone_number: str) -> CallerId:
        self.gets += 1
        if isinstance(self.listed, Exception):
            raise self.listed
        if not self.listed:
            raise NotFoundError("not found", status_code=404)
        return CallerId(phone_number)


def _initiate(client: FakeClient) -> Any:
    pipeline = SimpleNamespace(client=client, clock=SystemClock())
    target = Target(NUMBER, None, "sms", None, 0)
    return asyncio.run(_initiate_one(pipeline, target, send_by=float("inf")))  # type: ignore[arg-type]


def _complete(client: FakeClient) -> Any:
    pipeline = SimpleNamespace(client=client)
    code = MatchedCode(NUMBER, "uuid-1", "1234", message_id=7)
    return asyncio.run(_complete_one(pipeline, code))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "listed", "status"),
    [
        (None, False, S.INITIATED),
        (OutcomeUnknownError("maybe sent"), False, S.INITIATING),  # recovery decides later
        (RateLimitedError("429"), False, S.QUEUED),
        (ServerError("503"), False, S.QUEUED),
        (PlivoConnectionError("refused"), False, S.QUEUED),
        (NotSentError("past its send deadline"), False, S.QUEUED),  # nothing went out
        (AlreadyVerifiedError("already"), False, S.ALREADY_VERIFIED),
        (RequestRejectedError("bad number"), True, S.ALREADY_VERIFIED),  # any 4xx: GET first
        (RequestRejectedError("bad number"), False, S.FAILED),
        (RequestRejectedError("bad number"), ServerError("503"), S.FAILED),
    ],
)
def test_initiate_answers(error: Exception | None, listed: Any, status: S) -> None:
    outcome = _initiate(FakeClient(error, listed))
    assert outcome.status is status
    assert (outcome.verification_uuid == "uuid-new") == (status is S.INITIATED)


def test_bad_credentials_stop_the_run() -> None:
    with pytest.raises(AuthenticationError):
        _initiate(FakeClient(AuthenticationError("401")))


@pytest.mark.parametrize(
    ("error", "listed", "status", "used"),
    [
        (None, False, S.VERIFIED, True),
        (InvalidOtpError("invalid otp"), False, S.INITIATED, True),  # wait for another code
        (OtpAttemptsExceededError("locked"), False, S.EXPIRED, True),
        (VerificationExpiredError("expired"), False, S.EXPIRED, True),
        (VerificationNotFoundError("gone"), True, S.VERIFIED, True),  # an earlier try went in
        (OutcomeUnknownError("maybe"), False, S.INITIATED, False),  # same code next round
        (VerificationExpiredError("expired"), ServerError("503"), S.INITIATED, False),
        (ServerError("503"), False, S.INITIATED, False),
        (AlreadyVerifiedError("already"), False, S.VERIFIED, True),
    ],
)
def test_complete_answers(error: Exception | None, listed: Any, status: S, used: bool) -> None:
    outcome = _complete(FakeClient(error, listed))
    assert (outcome.status, outcome.message_used) == (status, used)
    assert outcome.wrong_otp == isinstance(error, InvalidOtpError)
    assert "1234" not in outcome.reason  # the code never lands in a reason
