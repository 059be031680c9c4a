"""Proof that the sandbox speaks Plivo: the official `plivo` SDK, pointed at it, does all six calls.

The SDK hard-codes https://api.plivo.com in module constants of `plivo.rest.client` and, for the
"voice" resources (VerifiedCallerId is one), re-reads `API_VOICE_BASE_URI` (or a fallback) before
every request. Patching those four URL constants is all that changes; the SDK's request building,
auth, JSON encoding, response parsing and error mapping run unmodified.
"""

from __future__ import annotations

from collections.abc import Iterator

import plivo
import plivo.rest.client as sdk_client
import pytest
from plivo import exceptions

from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer
from callerid.sandbox.faults import Fault, FaultKind, Operation
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

SUB1, SUB1_TOKEN = "SASANDBOXSUBACCT0001", "sandbox-subaccount-token-1"
NUMBER = "+14155551234"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(
        SandboxBackend(seed=19, rate=(1000, 1.0), subaccounts=DEFAULT_SUBACCOUNTS)
    ) as running:
        yield running


@pytest.fixture
def sandbox(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    server.backend.reset()
    server.faults.clear()
    base = f"{server.url}/v1/Account"
    for name in (
        "PLIVO_API_BASE_URI",
        "API_VOICE_BASE_URI",
        "API_VOICE_BASE_URI_FALLBACK_1",
        "API_VOICE_BASE_URI_FALLBACK_2",
    ):
        monkeypatch.setattr(sdk_client, name, base)
    return server


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[plivo.RestClient]:
    with plivo.RestClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN) as rest:
        yield rest


def test_the_sdk_performs_all_six_operations(
    client: plivo.RestClient, sandbox: SandboxServer
) -> None:
    ids = client.verify_callerids
    started = ids.initiate_verify(phone_number=NUMBER, alias="desk", channel="sms")
    assert started.message == (
        f"Verification code is sent to number {NUMBER} which is valid for 15 minutes"
    )
    otp = sandbox.backend.otp_for(started.verification_uuid)

    verified = ids.verify_caller_id(started.verification_uuid, otp=otp)
    assert (verified.phone_number, verified.alias, verified.country, verified.channel) == (
        NUMBER,
        "desk",
        "US",
        "sms",
    )
    assert verified.verification_uuid == started.verification_uuid

    got = ids.get_verified_caller_id(NUMBER)
    assert (got.phone_number, got.alias, got.subaccount) == (NUMBER, "desk", "")

    updated = ids.update_verified_caller_id(NUMBER, alias="front desk", subaccount=SUB1)
    assert (updated.alias, updated.subaccount) == ("front desk", SUB1)

    listed = ids.list_verified_caller_id(country="US", limit=20, offset=0)
    assert listed.meta.total_count == 1 and listed.meta.next is None
    [obj] = listed.objects
    assert obj.phone_number == NUMBER
    assert obj.resource_uri == f"/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId/14155551234"

    assert ids.delete_verified_caller_id(NUMBER) is None  # 204, no body
    with pytest.raises(exceptions.ResourceNotFoundError, match="not found"):
        ids.get_verified_caller_id(NUMBER)


def test_the_sdk_sees_the_section_0_errors(
    client: plivo.RestClient, sandbox: SandboxServer
) -> None:
    ids = client.verify_callerids
    uuid = ids.initiate_verify(phone_number=NUMBER).verification_uuid
    otp = sandbox.backend.otp_for(uuid)
    wrong = f"{(int(otp) + 1) % 10000:04d}"
    for _ in range(3):
        with pytest.raises(exceptions.ValidationError, match=r"^invalid otp$"):
            ids.verify_caller_id(uuid, otp=wrong)
    with pytest.raises(exceptions.ValidationError, match="maximum otp attempts exceeded"):
        ids.verify_caller_id(uuid, otp=otp)
    with pytest.raises(exceptions.ResourceNotFoundError, match="verification not found"):
        ids.verify_caller_id("3f2b8c1e-0000-4000-8000-000000000000", otp=otp)
    with pytest.raises(exceptions.ValidationError, match="invalid phone number"):
        ids.initiate_verify(phone_number="+1234")
    sandbox.backend.seed_verified("+14155550123")
    with pytest.raises(exceptions.ValidationError, match="phone number is already verified"):
        ids.initiate_verify(phone_number="+14155550123")
    with pytest.raises(exceptions.ValidationError, match="limit must be between 1 and 20"):
        ids.list_verified_caller_id(limit=50)
    with pytest.raises(exceptions.ResourceNotFoundError, match="not found"):
        ids.update_verified_caller_id("14155559999", alias="x")


def test_the_sdk_pages_through_45_caller_ids(
    client: plivo.RestClient, sandbox: SandboxServer
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(45)]
    for number in numbers:
        sandbox.backend.seed_verified(number)
    seen = [
        obj.phone_number
        for offset in (0, 20, 40)
        for obj in client.verify_callerids.list_verified_caller_id(offset=offset).objects
    ]
    assert seen == numbers[::-1]


def test_subaccount_credentials_through_the_sdk(sandbox: SandboxServer) -> None:
    sandbox.backend.seed_verified("+14155550001")
    sandbox.backend.seed_verified("+14155550002", subaccount=SUB1)
    with plivo.RestClient(SUB1, SUB1_TOKEN) as sub:
        listed = sub.verify_callerids.list_verified_caller_id()
        assert [o.phone_number for o in listed.objects] == ["+14155550002"]
        with pytest.raises(exceptions.ResourceNotFoundError):
            sub.verify_callerids.get_verified_caller_id("14155550001")


def test_the_sdk_is_refused_with_a_wrong_token(sandbox: SandboxServer) -> None:
    with (
        plivo.RestClient(DEFAULT_AUTH_ID, "not-the-token") as wrong,
        pytest.raises(exceptions.AuthenticationError, match="authentication failed"),
    ):
        wrong.verify_callerids.list_verified_caller_id()


def test_the_sdk_blindly_resends_an_initiate_after_5xx(
    client: plivo.RestClient, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """plivo-api.md §2: voice requests are re-sent up to 3 times on 5xx, POSTs included."""
    sandbox.faults.add(Fault(FaultKind.STATUS, count=2, status=503, operation=Operation.INITIATE))
    started = client.verify_callerids.initiate_verify(phone_number=NUMBER)
    assert started.verification_uuid
    assert sandbox.backend.stats()["total_requests"] == 3
    assert "Fallback for URL" in capsys.readouterr().out
