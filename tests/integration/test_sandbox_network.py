"""The phone network: OTPs arrive as signed Plivo SMS webhooks (or drop files), per behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from callerid.plivo.signature import verify_v3
from callerid.sandbox import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    SANDBOX_INBOX_NUMBER,
    Behaviour,
    SandboxServer,
    ThreadedUvicorn,
)
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS

MAIN = DEFAULT_AUTH_ID
SUB1, SUB1_TOKEN = "SASANDBOXSUBACCT0001", "sandbox-subaccount-token-1"
NUMBER = "+14155551234"


class Inbox:
    """A tiny webhook receiver that checks both V3 signatures the way our inbox will."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self._lock = threading.Lock()
        self.server = ThreadedUvicorn(
            Starlette(routes=[Route("/plivo/sms/", self.hook, methods=["POST"])])
        )
        self.url = f"{self.server.url}/plivo/sms/?tenant=test"

    async def hook(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        nonce = request.headers.get("x-plivo-signature-v3-nonce", "")
        owner = SUB1_TOKEN if form["From"] == "14155550777" else DEFAULT_AUTH_TOKEN
        record = {
            "form": form,
            "v3_ok": verify_v3(
                "POST",
                self.url,
                form,
                nonce,
                owner,
                request.headers.get("x-plivo-signature-v3", ""),
            ),
            "ma_v3_ok": verify_v3(
                "POST",
                self.url,
                form,
                nonce,
                DEFAULT_AUTH_TOKEN,
                request.headers.get("x-plivo-signature-ma-v3", ""),
            ),
            "content_type": request.headers.get("content-type", ""),
        }
        with self._lock:
            self.received.append(record)
        return PlainTextResponse("", status_code=self.status)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} webhooks, got {len(self.received)}")


@pytest.fixture(scope="module")
def inbox_server() -> Iterator[Inbox]:
    inbox = Inbox()
    with inbox.server:
        yield inbox


@pytest.fixture
def inbox(inbox_server: Inbox) -> Inbox:
    inbox_server.received.clear()
    inbox_server.status = 200
    return inbox_server


@pytest.fixture
def sandbox(inbox: Inbox) -> Iterator[SandboxServer]:
    with SandboxServer(
        inbox_url=inbox.url,
        reply_delay_s=0.05,
        late_s=30,
        seed=5,
        subaccounts=DEFAULT_SUBACCOUNTS,
    ) as running:
        yield running


def initiate(sandbox: SandboxServer, number: str = NUMBER, **body: str) -> str:
    account = SUB1 if body.get("as_sub") else MAIN
    body.pop("as_sub", None)
    token = SUB1_TOKEN if account == SUB1 else DEFAULT_AUTH_TOKEN
    response = httpx.post(
        f"{sandbox.url}/v1/Account/{account}/VerifiedCallerId/",
        json={"phone_number": number, **body},
        auth=(account, token),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["verification_uuid"])


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_sms_otp_arrives_as_a_signed_plivo_webhook(sandbox: SandboxServer, inbox: Inbox) -> None:
    uuid = initiate(sandbox)
    [hook] = inbox.wait_for(1)
    otp = sandbox.backend.otp_for(uuid)
    form = hook["form"]
    assert form["From"] == "14155551234" and form["To"] == SANDBOX_INBOX_NUMBER.lstrip("+")
    assert form["Text"] == f"Your verification code is {otp}"
    assert set(form) == {
        "From",
        "To",
        "Text",
        "Type",
        "MessageUUID",
        "Units",
        "TotalRate",
        "TotalAmount",
        "MessageIntent",
        "PowerpackUUID",
    }
    assert hook["v3_ok"] and hook["ma_v3_ok"]
    assert hook["content_type"].startswith("application/x-www-form-urlencoded")
    wait_until(lambda: len(sandbox.network.deliveries()) == 1)  # recorded once the POST returns
    [delivery] = sandbox.network.deliveries()
    assert delivery.ok and delivery.status_code == 200 and delivery.verification_uuid == uuid


def test_a_subaccount_number_is_signed_with_the_subaccount_token(
    sandbox: SandboxServer, inbox: Inbox
) -> None:
    initiate(sandbox, "+14155550777", as_sub="1")
    [hook] = inbox.wait_for(1)
    assert hook["v3_ok"] and hook["ma_v3_ok"]


def test_a_voice_code_is_only_heard_and_an_sms_to_a_landline_never_arrives(
    sandbox: SandboxServer, inbox: Inbox
) -> None:
    """Issue 12: the sandbox's phone network follows the number type, as the real one does."""
    landline = "+442079460958"  # phonenumbers: FIXED_LINE
    called = initiate(sandbox, channel="call")
    texted_landline = initiate(sandbox, landline)
    initiate(sandbox, "+14155550123")  # a mobile-or-fixed US number: its SMS arrives
    [hook] = inbox.wait_for(1)
    assert hook["form"]["From"] == "14155550123"
    assert sandbox.network.pending() == 0 and len(inbox.received) == 1
    messages = httpx.get(f"{sandbox.url}/_sandbox/messages").json()["messages"]
    by_uuid = {m["verification_uuid"]: m for m in messages}
    heard = by_uuid[called]
    assert heard["channel"] == "call" and heard["reaches_phone"] is True
    assert heard["otp"] == sandbox.backend.otp_for(called)
    assert by_uuid[texted_landline]["reaches_phone"] is False
    assert {d.phone_number for d in sandbox.network.deliveries()} == {"+14155550123"}


def test_heard_codes_are_texted_only_when_asked_for(sandbox: SandboxServer, inbox: Inbox) -> None:
    sandbox.network.configure(text_heard_codes=True)
    try:
        uuid = initiate(sandbox, channel="call")
        [hook] = inbox.wait_for(1)
        assert hook["form"]["Text"].endswith(sandbox.backend.otp_for(uuid))
    finally:
        sandbox.network.configure(text_heard_codes=False)


@pytest.mark.parametrize("behaviour", [Behaviour.NEVER, Behaviour.SILENT])
def test_never_and_silent_send_nothing_but_the_otp_is_readable(
    sandbox: SandboxServer, inbox: Inbox, behaviour: Behaviour
) -> None:
    sandbox.network.set_behaviour(NUMBER, behaviour)
    uuid = initiate(sandbox)
    initiate(sandbox, "+14155550123")  # a normal number, delivered after the silent one would be
    [hook] = inbox.wait_for(1)
    assert hook["form"]["From"] == "14155550123"
    assert sandbox.network.pending() == 0 and len(inbox.received) == 1
    [heard] = httpx.get(
        f"{sandbox.url}/_sandbox/messages", params={"phone_number": "14155551234"}
    ).json()["messages"]
    assert heard["otp"] == sandbox.backend.otp_for(uuid) and heard["verification_uuid"] == uuid


def test_wrong_code_behaviour_texts_a_code_that_fails(sandbox: SandboxServer, inbox: Inbox) -> None:
    response = httpx.post(
        f"{sandbox.url}/_sandbox/behaviour",
        json={"phone_number": NUMBER, "behaviour": "wrong_code"},
    )
    assert response.json()["behaviours"] == {NUMBER: "wrong_code"}
    uuid = initiate(sandbox)
    [hook] = inbox.wait_for(1)
    texted = hook["form"]["Text"].rsplit(" ", 1)[1]
    assert len(texted) == 4 and texted != sandbox.backend.otp_for(uuid)
    answer = httpx.post(
        f"{sandbox.url}/v1/Account/{MAIN}/VerifiedCallerId/Verification/{uuid}/",
        json={"otp": texted},
        auth=(MAIN, DEFAULT_AUTH_TOKEN),
    )
    assert answer.json()["error"] == "invalid otp"


def test_late_replies_come_after_expiry_on_the_sandbox_clock(
    sandbox: SandboxServer, inbox: Inbox
) -> None:
    httpx.post(
        f"{sandbox.url}/_sandbox/behaviour",
        json={"phone_number": NUMBER, "behaviour": "late", "late_s": 60},
    ).raise_for_status()
    initiate(sandbox)
    assert sandbox.network.pending() == 1
    httpx.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 15 * 60}).raise_for_status()
    time.sleep(0.2)  # the network polls every 50 ms: nothing may be due yet
    assert inbox.received == [] and sandbox.network.pending() == 1
    httpx.post(f"{sandbox.url}/_sandbox/clock", json={"advance_s": 61}).raise_for_status()
    [hook] = inbox.wait_for(1)
    assert hook["v3_ok"]


def test_failed_deliveries_are_recorded_and_the_network_keeps_going(
    sandbox: SandboxServer, inbox: Inbox
) -> None:
    inbox.status = 500
    initiate(sandbox)
    inbox.wait_for(1)
    wait_until(lambda: len(sandbox.network.deliveries()) == 1)
    [failed] = sandbox.network.deliveries()
    assert not failed.ok and failed.status_code == 500
    inbox.status = 200
    initiate(sandbox, "+14155550123")
    inbox.wait_for(2)
    wait_until(lambda: len(sandbox.network.deliveries()) == 2)
    body = httpx.get(f"{sandbox.url}/_sandbox/deliveries").json()["deliveries"]
    assert [d["ok"] for d in body] == [False, True]


def test_an_unreachable_inbox_never_blocks_the_api(tmp_path: Path) -> None:
    dead = ThreadedUvicorn(Starlette())
    dead_url = f"{dead.url}/plivo/sms/"
    dead.stop()  # the port is closed now: every delivery fails to connect
    with SandboxServer(inbox_url=dead_url, reply_delay_s=0) as sandbox:
        started = time.monotonic()
        initiate(sandbox)
        assert time.monotonic() - started < 1
        wait_until(lambda: len(sandbox.network.deliveries()) == 1)
        [failed] = sandbox.network.deliveries()
        assert not failed.ok and failed.error and "Connect" in failed.error


def test_drop_dir_gets_one_jsonl_line_per_message(tmp_path: Path) -> None:
    with SandboxServer(drop_dir=tmp_path / "drop", reply_delay_s=0) as sandbox:
        uuid = initiate(sandbox)
        wait_until(lambda: len(list((tmp_path / "drop").glob("*.jsonl"))) == 1)
    [path] = (tmp_path / "drop").glob("*.jsonl")
    [line] = path.read_text().splitlines()
    record = json.loads(line)
    assert record["from"] == NUMBER and record["to"] == SANDBOX_INBOX_NUMBER
    assert record["text"] == f"Your verification code is {sandbox.backend.otp_for(uuid)}"
    assert record["received_at"].endswith("Z")
    assert not list((tmp_path / "drop").glob(".sandbox-*"))  # no temporary file left behind


def test_the_inbox_can_be_configured_after_start(inbox: Inbox, tmp_path: Path) -> None:
    with SandboxServer(reply_delay_s=0) as sandbox:
        initiate(sandbox, "+14155550123")  # no target yet: nothing scheduled
        assert sandbox.network.pending() == 0
        settings = httpx.post(
            f"{sandbox.url}/_sandbox/network",
            json={"inbox_url": inbox.url, "drop_dir": str(tmp_path), "reply_delay_s": 0.01},
        ).json()
        assert settings["inbox_url"] == inbox.url and settings["reply_delay_s"] == 0.01
        initiate(sandbox)
        [hook] = inbox.wait_for(1)
        assert hook["form"]["From"] == "14155551234" and hook["v3_ok"]
        wait_until(lambda: len(list(tmp_path.glob("*.jsonl"))) == 1)
        bad = httpx.post(f"{sandbox.url}/_sandbox/network", json={"reply_delay_s": -1})
        assert bad.status_code == 400
        bad = httpx.post(f"{sandbox.url}/_sandbox/network", json={"inbox": "x"})
        assert bad.status_code == 400 and "unknown network settings" in bad.json()["error"]


def test_deliveries_follow_a_manual_clock_exactly(tmp_path: Path) -> None:
    """No thread, no wall time: `deliver_due()` on a ManualClock (a drop folder as the inbox)."""
    from callerid.clock import ManualClock
    from callerid.sandbox import PhoneNetwork, SandboxBackend

    clock = ManualClock()
    backend = SandboxBackend(clock=clock, seed=2)
    network = PhoneNetwork(backend, drop_dir=tmp_path, reply_delay_s=2, late_s=30)
    network.set_behaviour("+14155550123", Behaviour.LATE)
    backend.initiate(MAIN, NUMBER)
    backend.initiate(MAIN, "+14155550123")
    assert network.deliver_due() == 0 and network.pending() == 2
    clock.advance(2)
    assert network.deliver_due() == 1
    clock.advance(15 * 60 - 2 + 29)  # expiry + 29 s
    assert network.deliver_due() == 0
    clock.advance(1)  # expiry + 30 s
    assert network.deliver_due() == 1 and network.pending() == 0
    received = sorted(json.loads(p.read_text())["received_at"] for p in tmp_path.glob("*.jsonl"))
    assert received == ["2026-01-01T00:00:02Z", "2026-01-01T00:15:30Z"]
    # the delivery records keep the same (sandbox) clock as the files, not the wall clock
    delivered = sorted(d.to_json()["delivered_at"] for d in network.deliveries())
    assert delivered == received
