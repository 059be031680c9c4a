"""`send_by` holds until the request is on the wire, not only until its rate-limit grant.

A batch's initiates promise the ledger to go out within the claim's send window or not at all (a
crash then waits a window counted from its end). Granted in time, a request may still queue for
one of the transport's connections behind slow answers; it must not go out once the deadline has
passed. A real HTTP server on 127.0.0.1 holds every request it receives until the test releases
them, after the deadline: any request that reaches it after the release went out late.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from callerid.plivo._transport import Transport, pool_limits
from callerid.plivo._wire import WirePool
from callerid.plivo.errors import NotSentError
from callerid.plivo.limiter import RateLimiter
from callerid.plivo.retry import RetryPolicy

BODY = json.dumps({"api_id": "a", "message": "m", "verification_uuid": "u"}).encode()


class HoldingServer:
    """Answers each request only once `release` is set; records whether it came before."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.before: int = 0
        self.after: int = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if self.release.is_set():
                    self.after += 1
                else:
                    self.before += 1
                await self.release.wait()
                writer.write(
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                    + BODY
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("via", ["lean", "httpx"])
def test_a_request_granted_in_time_does_not_go_out_after_its_deadline(via: str) -> None:
    """Both connection pools: the lean one (the default) and httpx's (behind a proxy)."""

    async def go() -> tuple[HoldingServer, list[str]]:
        server = HoldingServer()
        url = await server.start()
        limiter = RateLimiter(300, 5.0)
        http: httpx.AsyncClient | WirePool = (
            httpx.AsyncClient(base_url=url, timeout=30.0)
            if via == "httpx"
            else WirePool(
                url,
                {},
                timeout=30.0,
                size=pool_limits(limiter).max_connections or 1,
                keepalive_expiry=4.0,
            )
        )
        transport = Transport(http, limiter, RetryPolicy())
        send_by = time.monotonic() + 1.0

        async def one() -> str:
            try:
                await transport.send("POST", "/x/", json={}, repeatable=False, send_by=send_by)
            except NotSentError:
                return "not sent"
            return "sent"

        calls = [asyncio.create_task(one()) for _ in range(120)]
        while time.monotonic() <= send_by + 0.2:  # the held requests fill every connection
            await asyncio.sleep(0.05)
        server.release.set()
        results = await asyncio.gather(*calls)
        await transport.aclose()
        await server.stop()
        return server, results

    server, results = asyncio.run(go())
    assert server.before > 0 and results.count("not sent") > 0
    assert server.after == 0, f"{server.after} requests went out after their deadline"
    assert results.count("sent") == server.before
