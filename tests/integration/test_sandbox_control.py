"""Sandbox-only routes (/_sandbox/...) and queued faults, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxServer
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

MAIN = DEFAULT_AUTH_ID
BASE = f"/v1/Account/{MAIN}/VerifiedCallerId"
NUMBER = "+14155551234"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(seed=3, subaccounts=DEFAULT_SUBACCOUNTS) as running:
        yield running


@pytest.fixture
def sandbox(server: SandboxServer) -> Iterator[SandboxServer]:
    httpx.post(f"{server.url}/_sandbox/reset").raise_for_status()
    yield server


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, auth=(MAIN, DEFAULT_AUTH_TOKEN), timeout=5) as client:
        yield client


@pytest.fixture
def control(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.url}/_sandbox", timeout=5) as client:
        yield client


def start(api: httpx.Client, number: str = NUMBER, **body: str) -> str:
    response = api.post(f"{BASE}/", json={"phone_number": number, **body})
    assert response.status_code == 201, response.text
    return str(response.json()["verification_uuid"])


def test_messages_list_every_otp_sent(api: httpx.Client, control: httpx.Client) -> None:
    first = start(api)
    second = start(api, channel="call")
    start(api, "+14155550123")
    for query in (NUMBER, "14155551234", "%2B14155551234"):
        messages = control.get("/messages", params={"phone_number": query}).json()["messages"]
        assert [m["verification_uuid"] for m in messages] == [first, second]
    assert [m["channel"] for m in messages] == ["sms", "call"]
    assert all(m["otp"].isdigit() and len(m["otp"]) == 4 for m in messages)
    datetime.fromisoformat(messages[0]["sent_at"])
    assert len(control.get("/messages").json()["messages"]) == 3


def test_stats_count_requests_429s_and_per_number_outcomes(
    api: httpx.Client, control: httpx.Client, sandbox: SandboxServer
) -> None:
    uuid = start(api)
    otp = sandbox.backend.otp_for(uuid)
    api.post(f"{BASE}/Verification/{uuid}/", json={"otp": "0000" if otp != "0000" else "1111"})
    api.post(f"{BASE}/Verification/{uuid}/", json={"otp": otp})
    api.get(f"{BASE}/")
    stats = control.get("/stats").json()
    assert stats["total_requests"] == 4 and stats["rate_limited"] == 0
    assert stats["numbers"] == {
        NUMBER: {"initiations": 1, "completion_attempts": 2, "completions": 1}
    }


def test_clock_moves_forward_and_expires_verifications(
    api: httpx.Client, control: httpx.Client, sandbox: SandboxServer
) -> None:
    before = control.get("/clock").json()
    uuid = start(api)
    moved = control.post("/clock", json={"advance_s": 900}).json()
    assert moved["offset_s"] == pytest.approx(before["offset_s"] + 900)
    gap = datetime.fromisoformat(moved["now"]) - datetime.fromisoformat(before["now"])
    assert 900 <= gap.total_seconds() < 905
    expired = api.post(f"{BASE}/Verification/{uuid}/", json={"otp": sandbox.backend.otp_for(uuid)})
    assert expired.json()["error"] == "verification expired"
    assert control.post("/clock", json={"advance_s": -1}).status_code == 400
    assert control.post("/clock", json={"offset_s": 0}).json()["offset_s"] >= 900  # never back


def test_reset_forgets_everything(api: httpx.Client, control: httpx.Client) -> None:
    start(api)
    control.post("/caller_ids", json={"phone_number": "+14155550123"})
    control.post("/faults", json={"kind": "status", "count": 5})
    assert control.post("/reset").status_code == 200
    assert api.get(f"{BASE}/").json()["meta"]["total_count"] == 0  # also: no fault fired
    assert control.get("/messages").json()["messages"] == []
    assert control.get("/faults").json()["faults"] == []
    assert control.get("/stats").json()["total_requests"] == 1


def test_caller_ids_can_be_seeded_over_http(api: httpx.Client, control: httpx.Client) -> None:
    one = control.post("/caller_ids", json={"phone_number": "14155550001", "alias": "a"})
    assert one.status_code == 201 and one.json()["caller_ids"][0]["phone_number"] == "+14155550001"
    many = control.post(
        "/caller_ids",
        json={
            "caller_ids": [
                {"phone_number": "+14155550002", "subaccount": "SASANDBOXSUBACCT0001"},
                {"phone_number": "+14155550003", "country": ""},
            ]
        },
    )
    assert many.status_code == 201
    listed = api.get(f"{BASE}/").json()["objects"]
    assert {o["phone_number"]: o["country"] for o in listed} == {
        "+14155550001": "US",
        "+14155550002": "US",
        "+14155550003": "",
    }
    bad = control.post("/caller_ids", json={"phone_number": "12"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid phone number"
    bad = control.post("/caller_ids", json={"phone_number": NUMBER, "subaccount": "SAWHO"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid subaccount"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"phone_number": NUMBER, "behaviour": "dance"}, "is not a valid Behaviour"),
        ({"phone_number": "12", "behaviour": "never"}, "invalid phone number"),
        (
            {"phone_number": NUMBER, "behaviour": "late", "late_s": -5},
            "late_s must not be negative",
        ),
    ],
)
def test_bad_behaviours_are_refused(
    control: httpx.Client, body: dict[str, object], error: str
) -> None:
    response = control.post("/behaviour", json=body)
    assert response.status_code == 400 and error in response.json()["error"]


def test_status_faults_answer_5xx_count_times_without_processing(
    api: httpx.Client, control: httpx.Client
) -> None:
    queued = control.post("/faults", json={"kind": "status", "status": 503, "count": 2})
    assert queued.json()["faults"][0]["count"] == 2
    statuses = [api.post(f"{BASE}/", json={"phone_number": NUMBER}).status_code for _ in range(3)]
    assert statuses == [503, 503, 201]
    assert len(control.get("/messages").json()["messages"]) == 1  # the 503s sent no OTP
    assert control.get("/stats").json()["faults_injected"] == 2


def test_a_request_refused_401_leaves_the_queued_fault_for_the_next_one(
    sandbox: SandboxServer, api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/faults", json={"kind": "status", "status": 503})
    wrong = httpx.get(f"{sandbox.url}{BASE}/", auth=(MAIN, "not-the-token"), timeout=5)
    assert wrong.status_code == 401
    assert len(control.get("/faults").json()["faults"]) == 1
    assert api.get(f"{BASE}/").status_code == 503
    assert control.get("/faults").json()["faults"] == []


def test_faults_can_target_one_operation(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/faults", json={"kind": "status", "operation": "list"})
    assert api.post(f"{BASE}/", json={"phone_number": NUMBER}).status_code == 201
    assert api.get(f"{BASE}/").status_code == 500
    assert api.get(f"{BASE}/").status_code == 200


def test_dropped_connections_are_transport_errors(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/faults", json={"kind": "drop", "operation": "initiate"})
    with pytest.raises(httpx.TransportError):
        api.post(f"{BASE}/", json={"phone_number": NUMBER})
    assert control.get("/messages").json()["messages"] == []  # dropped before processing
    assert api.post(f"{BASE}/", json={"phone_number": NUMBER}).status_code == 201


def test_latency_fault_delays_one_request(api: httpx.Client, control: httpx.Client) -> None:
    control.post("/faults", json={"kind": "latency", "latency_ms": 300})
    started = time.monotonic()
    assert api.get(f"{BASE}/").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_timeout_after_processing_sends_the_otp_but_no_answer(
    sandbox: SandboxServer, control: httpx.Client
) -> None:
    control.post("/faults", json={"kind": "timeout_after_processing", "operation": "initiate"})
    with (
        httpx.Client(
            base_url=sandbox.url, auth=(MAIN, DEFAULT_AUTH_TOKEN), timeout=0.5
        ) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(f"{BASE}/", json={"phone_number": NUMBER})
    [sent] = control.get("/messages").json()["messages"]  # the OTP went out all the same
    assert sent["phone_number"] == NUMBER


def test_timeout_after_processing_with_a_delay_answers_late(
    api: httpx.Client, control: httpx.Client
) -> None:
    control.post("/faults", json={"kind": "timeout_after_processing", "delay_s": 0.4})
    started = time.monotonic()
    response = api.post(f"{BASE}/", json={"phone_number": NUMBER})
    assert response.status_code == 201 and time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    "body", [{"kind": "nope"}, {"kind": "status", "status": 200}, {"kind": "drop", "count": 0}]
)
def test_bad_faults_get_400(control: httpx.Client, body: dict[str, object]) -> None:
    response = control.post("/faults", json=body)
    assert response.status_code == 400 and response.json()["error"]
    assert control.get("/faults").json()["faults"] == []


def test_constant_latency_applies_to_every_api_request() -> None:
    with SandboxServer(latency_ms=150) as sandbox:
        started = time.monotonic()
        response = httpx.get(f"{sandbox.url}{BASE}/", auth=(MAIN, DEFAULT_AUTH_TOKEN))
        assert response.status_code == 200 and time.monotonic() - started >= 0.15
