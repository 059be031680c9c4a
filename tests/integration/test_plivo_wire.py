"""The lean HTTP/1.1 pool (callerid/plivo/_wire.py) against scripted servers on 127.0.0.1.

Each server reads real requests off a socket and answers with bytes written by hand: the framing
the API may use (Content-Length, chunked in pieces, up to the close, gzip, an interim 100), the
ways a connection ends (kept alive, `Connection: close`, closed while idle, closed instead of an
answer), and malformed answers. TLS with a certificate made for the test. Errors are httpx's types,
with the meaning the transport classifies: connect errors sent nothing, the others were sent.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from callerid.plivo import PlivoClient, RateLimiter
from callerid.plivo._wire import MAX_HEAD, WirePool, WireResponse
from callerid.plivo.client import _proxied
from callerid.plivo.errors import OutcomeUnknownError, PlivoConnectionError
from callerid.plivo.retry import RetryPolicy

Answer = Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[bool]]


def reply(status: int, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Scripted:
    """A server that answers the n-th request with `answers[n]` (the last one repeats). An answer
    writes what it likes and returns whether the connection stays open."""

    def __init__(self, *answers: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.tls = tls
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = {"method": method, "target": target, "headers": headers, "body": body}
                self.requests.append(request)
                index = min(len(self.requests), len(self.answers)) - 1
                keep = await self.answers[index](request, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def send(data: bytes, keep: bool = True) -> Answer:
    async def answer(request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        return keep

    return answer


def pool(url: str, **kw: Any) -> WirePool:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("size", 4)
    kw.setdefault("keepalive_expiry", 4.0)
    return WirePool(url, {"Authorization": "Basic abc", "Accept": "application/json"}, **kw)


async def get(p: WirePool, path: str = "/x/", **kw: Any) -> WireResponse:
    events: list[str] = []
    response = await p.request(
        kw.pop("method", "GET"),
        path,
        json=kw.pop("json", None),
        params=kw.pop("params", None),
        before_send=lambda: events.append("send"),
        on_head=lambda: events.append("head"),
    )
    assert events == ["send", "head"]
    return response


async def test_a_request_is_written_as_the_api_expects_and_the_connection_is_kept() -> None:
    server = Scripted(send(reply(201, b'{"ok": true}', "Retry-After: 3", "X-Two: a", "x-two: b")))
    async with server as url:
        p = pool(url + "/base/")
        first = await get(p, "/v/", method="POST", json={"alias": "Café", "n": 1})
        await get(p, "/v/", params={"limit": 20, "alias": "a b&c"})
        await p.aclose()
    assert (first.status_code, first.is_success, first.json()) == (201, True, {"ok": True})
    assert first.headers["retry-after"] == "3" and first.headers["x-two"] == "a, b"
    post, listing = server.requests
    assert (post["method"], post["target"]) == ("POST", "/base/v/")
    assert json.loads(post["body"]) == {"alias": "Café", "n": 1}
    assert post["headers"]["content-type"] == "application/json"
    assert post["headers"]["host"] == url.removeprefix("http://")
    assert post["headers"]["authorization"] == "Basic abc"
    assert post["headers"]["accept-encoding"] == "identity"
    assert listing["target"] == "/base/v/?limit=20&alias=a%20b%26c"
    assert server.connections == 1  # kept alive


async def test_chunked_bodies_in_pieces_interim_answers_and_gzip_are_read() -> None:
    body = b'{"objects": [1, 2, 3]}'

    async def dribble(request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        data = (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(
                f"{len(body[i : i + 5]):x};ext=1\r\n".encode() + body[i : i + 5] + b"\r\n"
                for i in range(0, len(body), 5)
            )
            + b"0\r\nX-Trailer: t\r\n\r\n"
        )
        for i in range(len(data)):  # one byte at a time
            writer.write(data[i : i + 1])
            await writer.drain()
        return True

    zipped = gzip.compress(body)
    server = Scripted(dribble, send(reply(200, zipped, "Content-Encoding: gzip")))
    async with server as url:
        p = pool(url)
        chunked = await get(p)
        compressed = await get(p)
        await p.aclose()
    assert chunked.status_code == 200 and chunked.content == body
    assert compressed.content == body
    assert server.connections == 1


async def test_connection_close_and_a_body_up_to_the_close() -> None:
    server = Scripted(
        send(reply(200, b"{}", "Connection: close"), keep=False),
        send(b"HTTP/1.1 200 OK\r\n\r\n" + b'{"a": 1}', keep=False),
        send(reply(204, b"")),
    )
    async with server as url:
        p = pool(url)
        assert (await get(p)).content == b"{}"
        assert (await get(p)).json() == {"a": 1}
        assert (await get(p)).status_code == 204
        await p.aclose()
    assert server.connections == 3


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    server = Scripted(send(reply(200, b"{}"), keep=False))  # answers, then closes (no header)
    async with server as url:
        p = pool(url)
        for _ in range(3):
            await get(p)
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        await p.aclose()
    assert len(server.requests) == 3 and server.connections == 3


async def test_a_connection_idle_past_its_expiry_is_not_used_again() -> None:
    server = Scripted(send(reply(200, b"{}")))
    async with server as url:
        p = pool(url, keepalive_expiry=0.05)
        await get(p)
        await get(p)
        await asyncio.sleep(0.1)
        await get(p)
        await p.aclose()
    assert server.connections == 2


async def test_cancelled_before_the_first_byte_sends_nothing_and_keeps_the_connection() -> None:
    server = Scripted(send(reply(200, b"{}")))

    def refuse() -> None:
        raise RuntimeError("past its deadline")

    async with server as url:
        p = pool(url)
        await get(p)
        with pytest.raises(RuntimeError):
            await p.request("GET", "/y/", before_send=refuse, on_head=lambda: None)
        await get(p)
        await p.aclose()
    assert [r["target"] for r in server.requests] == ["/x/", "/x/"]
    assert server.connections == 1


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (send(b"", keep=False), "disconnected without sending a response"),
        (send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", keep=False), "whole response"),
        (send(b"SMTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 2xx OK\r\nContent-Length: 0\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 20\r\nContent-Length: 0\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 200 OK\r\nBad header\r\n\r\n"), "malformed"),
        (send(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD), "malformed"),
        (send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), "malformed"),
        (send(reply(200, b"not gzip", "Content-Encoding: gzip")), "malformed"),
        (send(reply(200, b"{}", "Content-Encoding: br")), "malformed"),
    ],
)
async def test_a_broken_answer_is_a_protocol_error(answer: Answer, error: str) -> None:
    server = Scripted(answer)
    async with server as url:
        p = pool(url)
        with pytest.raises(httpx.RemoteProtocolError, match=error):
            await get(p)
        await p.aclose()


async def test_no_answer_within_the_timeout_is_a_read_timeout() -> None:
    async def hold(request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(1)
        return False

    async with Scripted(hold) as url:
        p = pool(url, timeout=0.2)
        with pytest.raises(httpx.ReadTimeout):
            await get(p)
        await p.aclose()


async def test_nothing_listening_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    p = pool(f"http://127.0.0.1:{port}")
    with pytest.raises(httpx.ConnectError):
        await get(p)


async def test_through_the_client_an_unanswered_initiate_is_unknown_and_a_refused_one_not_sent(
    tmp_path: Path,
) -> None:
    """What the transport makes of the pool's errors (the sandbox's own faults are tested in
    test_client_contract_faults.py): closed instead of an answer after an initiate is an outcome
    unknown, never repeated; nothing listening is a connection error, repeated."""
    server = Scripted(send(b"", keep=False))
    fast = RetryPolicy(base_s=0.001, cap_s=0.002, max_attempts=3)
    async with (
        server as url,
        PlivoClient(
            "MAXXXXXXXXXXXXXXXXXX", "t0ken", url, limiter=RateLimiter(), retry_policy=fast
        ) as c,
    ):
        with pytest.raises(OutcomeUnknownError):
            await c.initiate("+14155552671")
    assert len(server.requests) == 1
    async with PlivoClient(
        "MAXXXXXXXXXXXXXXXXXX", "t0ken", url, limiter=RateLimiter(), retry_policy=fast
    ) as c:
        with pytest.raises(PlivoConnectionError, match="could not connect"):
            await c.initiate("+14155552671")


def _certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's that trusts
    only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_https_is_spoken_and_the_certificate_checked(tmp_path: Path) -> None:
    server_tls, client_tls = _certificate(tmp_path)
    server = Scripted(send(reply(200, b'{"tls": 1}')), tls=server_tls)
    async with server as url:
        assert url.startswith("https://")
        p = pool(url, ssl_context=client_tls)
        assert (await get(p)).json() == {"tls": 1}
        assert (await get(p)).json() == {"tls": 1}
        await p.aclose()
        untrusting = pool(url)  # the default CAs (certifi): the test's certificate is nobody's
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await get(untrusting)
    # one connection kept for both requests; the refused handshake never reached the handler
    assert server.connections == 1 and len(server.requests) == 2


def test_the_lean_pool_is_used_unless_a_proxy_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    assert not _proxied("https://api.plivo.com")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _proxied("https://api.plivo.com") and not _proxied("http://127.0.0.1:8000")
    monkeypatch.setenv("NO_PROXY", "plivo.com")
    assert not _proxied("https://api.plivo.com")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    assert _proxied("http://127.0.0.1:8000") and not _proxied("https://api.plivo.com")
    assert _proxied("ftp://api.plivo.com")  # httpx reports an unsupported scheme, as before


async def test_an_idle_connection_the_server_closed_unseen_is_not_written_to() -> None:
    """The server closes an idle connection while the event loop is busy elsewhere: the close is
    in the kernel, not yet delivered. The next request must see it and take a new connection
    (else an initiate that never reached the server would be "sent, no answer": unknown)."""
    answered: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                answered.append(data.split(b"\r\n", 1)[0])
                conn.sendall(reply(200, b"{}"))  # kept alive, by its headers
                time.sleep(0.05)  # then its idle timeout: closed

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    p = pool(f"http://127.0.0.1:{port}")
    await get(p)
    time.sleep(0.3)  # the loop is busy: the close arrives unseen
    await get(p)  # a new connection, not a write into the closed one
    await p.aclose()
    thread.join(5)
    listener.close()
    assert answered == [b"GET /x/ HTTP/1.1", b"GET /x/ HTTP/1.1"]


async def test_a_connection_closed_as_it_was_made_sends_nothing_and_is_a_connect_error() -> None:
    """A server that closes at once (TLS reads right after its handshake, so the close can be
    known before the first write): nothing is written, `before_send` is not called, and the
    error says not sent (ConnectError), so even an initiate may be tried again."""
    server = Scripted(send(reply(200, b"{}")))
    async with server as url:
        p = pool(url)
        real_connect = p._connect

        async def closed_at_once() -> Any:
            conn = await real_connect()
            conn.eof_received()  # as sslproto delivers an early close before returning
            return conn

        p._connect = closed_at_once  # type: ignore[method-assign]
        calls: list[str] = []
        with pytest.raises(httpx.ConnectError, match="before the request was written"):
            await p.request(
                "POST", "/v/", before_send=lambda: calls.append("send"), on_head=lambda: None
            )
        p._connect = real_connect  # type: ignore[method-assign]
        await get(p)
        await p.aclose()
    assert calls == [] and len(server.requests) == 1


async def test_the_path_cannot_change_the_requests_framing() -> None:
    """Escaped as httpx escapes it: a line feed or non-ASCII text in a path is percent-encoded,
    never written raw into the request line (and the client refuses such ids and numbers)."""
    server = Scripted(send(reply(404, b"{}")))
    async with server as url:
        p = pool(url)
        await get(p, "/Account/MAX\n/Caller/+1\u0664\u0661/")
        await p.aclose()
    assert server.requests[0]["target"] == "/Account/MAX%0A/Caller/+1%D9%A4%D9%A1/"
    for auth_id in ("MAXXXXXXXXXXXXXXXXXX\n", "MAX X"):
        with pytest.raises(ValueError):
            PlivoClient(auth_id, "t", "http://127.0.0.1:9")
    client = PlivoClient("MAXXXXXXXXXXXXXXXXXX", "t", "http://127.0.0.1:9")
    for number in ("+14155552671\n", "+1\u0664\u0661\u0665\u0665\u0665\u0662\u0666\u0667\u0661"):
        with pytest.raises(ValueError, match=r"not an E\.164"):
            await client.get(number)
    with pytest.raises(ValueError, match="4 to 8 digits"):
        await client.complete("uuid", "123456\n")
    await client.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789"),
        send(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}"),
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n{}\r\n0\r\n\r\n"),
        send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n"),
    ],
)
async def test_lengths_are_plain_numbers(answer: Answer) -> None:
    async with Scripted(answer) as url:
        p = pool(url)
        with pytest.raises(httpx.RemoteProtocolError, match="malformed"):
            await get(p)
        await p.aclose()


async def test_repeated_equal_lengths_and_raw_deflate_are_read() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    deflated = raw.compress(b'{"d": 1}') + raw.flush()
    server = Scripted(
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"),
        send(reply(200, deflated, "Content-Encoding: deflate")),
        send(reply(200, zlib.compress(b'{"z": 1}'), "Content-Encoding: deflate")),
    )
    async with server as url:
        p = pool(url)
        assert (await get(p)).json() == {}
        assert (await get(p)).json() == {"d": 1}
        assert (await get(p)).json() == {"z": 1}
        await p.aclose()
