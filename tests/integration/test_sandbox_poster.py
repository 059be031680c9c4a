"""The sandbox's webhook poster over real sockets: messages due together are in flight together,
a kept-alive connection the receiver closed is replaced without losing the message, and the
messages of one number never share a round (their order is kept)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from callerid.sandbox.delivery import OutboundSms
from callerid.sandbox.models import Channel, SentOtp
from callerid.sandbox.network import _rounds, _Scheduled
from callerid.sandbox.poster import WebhookPoster
from callerid.serving import ServerLimits, ThreadedUvicorn


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.status = 200

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                self.bodies.append(await request.body())
                await asyncio.sleep(0.05)  # long enough for the others of a round to arrive
                return PlainTextResponse("ok", status_code=self.status)
            finally:
                self.in_flight -= 1

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    with ThreadedUvicorn(state.app(), limits=ServerLimits(keep_alive_s=1)) as server:
        yield state, f"{server.url}/hook"


def form(i: int) -> tuple[bytes, dict[str, str]]:
    return f"n={i}".encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_round_is_in_flight_together(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    poster = WebhookPoster(parallel=4)
    try:
        answers = poster.post(url, [form(i) for i in range(8)])
    finally:
        poster.close()
    assert [a.status for a in answers] == [200] * 8 and all(a.ok for a in answers)
    assert sorted(state.bodies) == sorted(f"n={i}".encode() for i in range(8))
    assert 1 < state.most_in_flight <= 4


def test_a_connection_closed_while_idle_is_replaced(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    poster = WebhookPoster(parallel=2)
    try:
        assert all(a.ok for a in poster.post(url, [form(1), form(2)]))
        time.sleep(2.5)  # the receiver's keep-alive (1 s) closes both connections
        answers = poster.post(url, [form(3), form(4)])
    finally:
        poster.close()
    assert all(a.ok for a in answers), answers
    assert sorted(state.bodies) == [b"n=1", b"n=2", b"n=3", b"n=4"]  # each exactly once


def test_a_refusal_is_an_answer_and_a_dead_port_an_error(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.status = 500
    poster = WebhookPoster(timeout_s=2)
    try:
        [refused] = poster.post(url, [form(1)])
        dead = ThreadedUvicorn(Starlette())
        dead_url = f"{dead.url}/hook"
        dead.stop()
        [unreachable] = poster.post(dead_url, [form(2)])
        [nonsense] = poster.post("ftp://example.invalid/x", [form(3)])
    finally:
        poster.close()
    assert not refused.ok and refused.status == 500 and refused.error == "HTTP 500"
    assert not unreachable.ok and unreachable.status is None
    assert unreachable.error and "Connect" in unreachable.error
    assert not nonsense.ok and nonsense.error and "http" in nonsense.error


def _scheduled(number: str, i: int) -> _Scheduled:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    sent = SentOtp(number, Channel.SMS, "1234", f"v{i}", "MA", now, now + timedelta(minutes=15))
    return _Scheduled(now, OutboundSms(sent, "code 1234", "+15005550100", f"m{i}", "0" * 20))


def test_one_number_never_twice_in_a_round() -> None:
    due = [_scheduled(n, i) for i, n in enumerate(["+1a", "+1b", "+1a", "+1c", "+1d", "+1e"])]
    rounds = _rounds(due, 3)
    assert [[s.message_uuid for s in r] for r in rounds] == [
        ["m0", "m1"],
        ["m2", "m3", "m4"],
        ["m5"],
    ]
