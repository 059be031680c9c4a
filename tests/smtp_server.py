"""A real SMTP server in the test (aiosmtpd on 127.0.0.1): collects what it is sent.

`refuse` names recipients answered with 550; `fail_connections` refuses that many connections
(by closing them at once), so the mailer's reconnect-and-retry is exercised.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpProtocol


@dataclass
class Received:
    to: list[str]
    message: EmailMessage

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    fail_connections: int = 0
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.arrived:
            self.received.append(Received(list(envelope.rcpt_tos), parsed))
            self.arrived.notify_all()
        return "250 Message accepted"

    def to(self, address: str) -> list[Received]:
        with self.arrived:
            return [r for r in self.received if address in r.to]

    def wait_for(self, count: int, timeout_s: float = 60) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout_s)
            return list(self.received)


class _Controller(Controller):
    def __init__(self, handler: Handler, port: int) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=port)
        self._handler = handler

    def factory(self) -> SmtpProtocol:
        handler = self._handler
        protocol = SmtpProtocol(handler)
        original = protocol.connection_made

        def connection_made(transport: Any) -> None:
            with handler.lock:
                handler.connections += 1
                drop = handler.fail_connections > 0
                if drop:
                    handler.fail_connections -= 1
            if drop:
                transport.close()
                return
            original(transport)

        protocol.connection_made = connection_made  # type: ignore[method-assign]
        return protocol


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    handler: Handler
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=callerid@example.com"


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    handler = Handler()
    port = _free_port()
    controller = _Controller(handler, port)
    controller.start()
    handler.connections = 0  # the controller's own readiness probe is not a client
    try:
        yield SmtpServer(handler, port)
    finally:
        controller.stop()
