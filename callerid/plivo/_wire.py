"""A lean HTTP/1.1 client for the one host of the API: kept-alive connections, asyncio protocols.

Issue 14: through httpx (client, httpcore's pool, anyio, h11) a request cost the run process about
1 ms of CPU, more than half of its share per number; the run talks to one host with a handful of
request shapes, so this module does only that: a request is one `transport.write` of bytes built
from a fixed head, a response is parsed from the bytes as they come (Content-Length, chunked, or
up to the close), on connections kept for `keepalive_expiry` seconds.

Errors are httpx's exception types, with httpx's meaning, so the transport above classifies both
paths alike: `httpx.ConnectError` / `httpx.ConnectTimeout` (nothing was sent),
`httpx.RemoteProtocolError` (sent; the connection closed or the answer was malformed),
`httpx.ReadTimeout` (sent; no whole answer within the timeout: unlike httpx's read timeout, the
timeout bounds the whole answer, not each read; an API answer is a few KB).

What it does not do, by design: proxies (the client uses httpx when the environment names a proxy
for the API's URL), redirects (the API answers none), cookies, HTTP/2. A response whose body is
compressed although we asked for `identity` is still decoded (gzip, deflate), within the same size
bound as any body.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import select
import ssl
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

MAX_HEAD = 64 * 1024  # a response's status line and headers
MAX_BODY = 16 * 1024 * 1024  # a response's body, decoded (a list page is a few KB)
_REQUEST_BODY = frozenset({"POST", "PUT", "PATCH"})
_NO_BODY_STATUS = frozenset({204, 304})
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class WireResponse:
    """What the client reads of a response: status, headers (lower-case names), body."""

    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<WireResponse [{self.status_code}]>"


def _encode_json(body: Mapping[str, Any]) -> bytes:
    return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class _Connection(asyncio.Protocol):
    """One socket and the response being read on it (one request at a time)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False  # closed, half-closed by the server, or unusable: never reused
        self.idle_since = 0.0
        self._buf = bytearray()
        self._waiter: asyncio.Future[WireResponse] | None = None
        self._on_head: Callable[[], None] | None = None
        self._head_only = False  # a HEAD request: no body follows whatever the headers say
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._mode = ""  # "length", "chunked" or "close"
        self._length = 0
        self._body = bytearray()  # a chunked body so far
        self._keep_alive = True
        self._eof = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self.closed = True  # bytes nobody asked for (a 408 before an idle close): unusable
            return
        self._buf += data
        self._advance()

    def eof_received(self) -> bool:
        self._eof = True
        self.closed = True
        self._advance()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.closed = True
        self._advance()

    # one exchange

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(
        self, data: bytes, timeout: float, on_head: Callable[[], None], head_only: bool
    ) -> WireResponse:
        """Write one request, return its whole response (`on_head` once its headers are in)."""
        assert self.transport is not None and self._waiter is None and not self.closed
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[WireResponse] = loop.create_future()
        self._waiter = waiter
        self._on_head = on_head
        self._head_only = head_only
        self._buf.clear()
        self._status, self._headers, self._mode = 0, None, ""
        self._body = bytearray()
        self.transport.write(data)
        handle = loop.call_later(timeout, self._time_out, waiter)
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiter = self._on_head = None

    def quiet(self) -> bool:
        """Whether the socket has nothing to read (no close, no bytes) right now."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    @property
    def reusable(self) -> bool:
        return self._keep_alive and not self.closed and not self._buf

    def _time_out(self, waiter: asyncio.Future[WireResponse]) -> None:
        if not waiter.done():
            waiter.set_exception(httpx.ReadTimeout("no whole answer within the timeout"))

    def _fail(self, message: str) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(httpx.RemoteProtocolError(message))

    def _advance(self) -> None:
        """Parse what has come so far; settle the waiter once the response is whole."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            done = self._parse()
        except (ValueError, UnicodeDecodeError, zlib.error) as exc:
            self._fail(f"malformed response: {exc}")
            return
        if done is not None:
            waiter.set_result(done)
        elif self._eof:
            if self._headers is None and not self._buf:
                self._fail("Server disconnected without sending a response.")
            else:
                self._fail("Server disconnected before the whole response arrived.")

    def _parse(self) -> WireResponse | None:
        buf = self._buf
        while self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end > MAX_HEAD or (end < 0 and len(buf) > MAX_HEAD):
                raise ValueError("response headers too long")
            if end < 0:
                return None
            self._read_head(bytes(buf[:end]))
            del buf[: end + 4]
        if self._mode == "length":
            if len(buf) < self._length:
                return None
            body = bytes(buf[: self._length])
            del buf[: self._length]
        elif self._mode == "chunked":
            if not self._read_chunks():
                return None
            body = bytes(self._body)
        else:  # "close": the body ends with the connection
            if len(buf) > MAX_BODY:
                raise ValueError("response body too large")
            if not self._eof:
                return None
            body = bytes(buf)
            buf.clear()
        headers = self._headers
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            body = _decode(body, coding)
        elif coding not in ("identity", ""):
            raise ValueError(f"unsupported content-encoding {coding!r}")
        return WireResponse(self._status, headers, body)

    def _read_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {lines[0][:40]!r}")
        code = rest[:3]
        if not (code.isdigit() and len(code) == 3 and rest[3:4] in ("", " ")):
            raise ValueError(f"bad status line: {lines[0][:40]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ValueError("bad header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:
            return  # an interim answer (100 Continue): the real one follows
        self._status, self._headers = status, headers
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self._keep_alive = version == "HTTP/1.1" and "close" not in tokens
        if self._head_only or status in _NO_BODY_STATUS:
            self._mode, self._length = "length", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._mode = "chunked"
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values)).encode()):
                raise ValueError("bad content-length")
            length = int(next(iter(values)))
            if not 0 <= length <= MAX_BODY:
                raise ValueError("response body too large")
            self._mode, self._length = "length", length
        else:
            self._mode, self._keep_alive = "close", False
        if self._on_head is not None:
            self._on_head()

    def _read_chunks(self) -> bool:
        """Consume whole chunks from the buffer; True once the last chunk and trailers are in."""
        buf = self._buf
        while True:
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                if len(buf) > MAX_HEAD:
                    raise ValueError("chunk size line too long")
                return False
            size_text = bytes(buf[:line_end]).split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise ValueError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:  # the last chunk; then trailer lines (if any) and an empty line
                end = buf.find(b"\r\n\r\n", line_end)
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        raise ValueError("chunked trailers too long")
                    return False
                del buf[: end + 4]
                return True
            if len(self._body) + size > MAX_BODY:
                raise ValueError("response body too large")
            start = line_end + 2
            if len(buf) < start + size + 2:
                return False
            if buf[start + size : start + size + 2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            self._body += buf[start : start + size]
            del buf[: start + size + 2]


def _decode(body: bytes, coding: str) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS
    try:
        out = zlib.decompressobj(wbits).decompress(body, MAX_BODY + 1)
    except zlib.error:
        if coding != "deflate":
            raise
        out = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, MAX_BODY + 1)  # raw deflate
    if len(out) > MAX_BODY:
        raise ValueError("response body too large")
    return out


class WirePool:
    """Kept-alive connections to one origin. The caller keeps the requests in flight at most
    `size` (the transport's gate): idle connections beyond it are closed."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        size: int,
        keepalive_expiry: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        https = parts.scheme == "https"
        # httpx's default (certifi's CAs), as the client had; built only for https (~0.1 s)
        self._ssl = (ssl_context or httpx.create_ssl_context()) if https else None
        name = f"[{self._host}]" if ":" in self._host else self._host
        authority = name if parts.port is None else f"{name}:{parts.port}"
        self._prefix = parts.path.rstrip("/")
        fixed = {"Host": authority, **headers, "Accept-Encoding": "identity"}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._timeout = timeout
        self._size = size
        self._expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._closed = False
        self.busy = 0  # requests in flight through this pool (kept by the transport's lanes)

    @property
    def size(self) -> int:
        return self._size

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        before_send: Callable[[], None],
        on_head: Callable[[], None],
    ) -> WireResponse:
        """One request on a kept-alive (or new) connection. `before_send` runs just before the
        first byte is written and may raise to cancel the request (nothing is sent then)."""
        if self._closed:
            raise httpx.ConnectError("the client is closed")
        # Escaped as httpx would (anything outside a path's characters, a line feed included,
        # percent-encoded): nothing a caller passes can change the request's framing.
        target = quote(self._prefix + path, safe=_PATH_SAFE)
        if params:
            target += "?" + urlencode({k: str(v) for k, v in params.items()}, quote_via=quote)
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        body = b""
        if json is not None:
            body = _encode_json(json)
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method in _REQUEST_BODY:
            head += "Content-Length: 0\r\n"
        data = (head + "\r\n").encode("ascii") + body
        conn = self._take_idle() or await self._connect()
        if conn.closed:  # closed by the server as it was made (TLS reads at once): not sent
            conn.close()
            raise httpx.ConnectError("the connection closed before the request was written")
        try:
            before_send()
        except BaseException:
            self._put_back(conn)
            raise
        try:
            response = await conn.exchange(data, self._timeout, on_head, method == "HEAD")
        except BaseException:
            conn.close()  # whatever else is on its way belongs to nobody now
            raise
        if conn.reusable:
            self._put_back(conn)
        else:
            conn.close()
        return response

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection that is still good: open, not past its
        expiry, and with nothing to read. A close (or stray bytes) the kernel already holds but
        the event loop has not yet delivered would otherwise turn a request that never reached
        the server into one sent without an answer (httpcore polls the socket alike)."""
        idle = self._idle
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry and conn.quiet():
                return conn
            conn.close()
        return None

    def _put_back(self, conn: _Connection) -> None:
        if self._closed or conn.closed or len(self._idle) >= self._size:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                _, conn = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._ssl is not None else None,
                )
        except TimeoutError:
            message = f"no connection to {self._host} within the timeout"
            raise httpx.ConnectTimeout(message) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return conn

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
