"""How the sandbox's phone network POSTs its webhooks: kept-alive connections, several at once.

The standard library's `http.client` costs about a third of an httpx request's CPU (measured
~170 vs ~470 us a POST), which matters when the sandbox texts hundreds of codes a second. The
messages due together go out together, up to `parallel` at a time, each on its own connection:
every request is written first, then the answers are read, so the receiver sees a burst it can
store in one transaction instead of one message after the other.

A kept-alive connection the receiver has closed meanwhile (its idle timeout) fails on the next use
before any answer came: that request is sent once more on a new connection. A webhook the
receiver did handle is stored once whatever happens to its answer (it dedupes on MessageUUID), so
sending it again is safe. Nothing else is retried: the outcome says what went wrong.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

# what a connection the server closed while idle raises on its next use
_STALE = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


@dataclass(frozen=True)
class Answer:
    """The status of one POST, or why there is none."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def of(cls, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, parts.port, path)


class _Connection:
    def __init__(self, http: http.client.HTTPConnection) -> None:
        self.http = http
        self.kept = False  # it has answered a request and stayed open: it may have gone stale


Request = tuple[bytes, dict[str, str]]  # body, headers


class WebhookPoster:
    """POSTs forms to one URL at a time over a few kept-alive connections (one thread)."""

    def __init__(self, timeout_s: float = 5.0, parallel: int = 8) -> None:
        if timeout_s <= 0 or parallel < 1:
            raise ValueError("timeout_s must be > 0 and parallel >= 1")
        self.timeout_s, self.parallel = timeout_s, parallel
        self._idle: dict[_Target, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    def post(self, url: str, requests: Sequence[Request]) -> list[Answer]:
        """POST each (body, headers) to `url`; the answers in the same order."""
        try:
            target = _Target.of(url)
        except ValueError as exc:
            return [_failed(exc)] * len(requests)
        answers: list[Answer] = []
        for start in range(0, len(requests), self.parallel):
            answers += self._round(target, requests[start : start + self.parallel])
        return answers

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.http.close()
        self._idle.clear()

    # internals

    def _round(self, target: _Target, requests: Sequence[Request]) -> list[Answer]:
        idle = self._idle.setdefault(target, [])
        connections = [idle.pop() if idle else self._connect(target) for _ in requests]
        kept = [c.kept for c in connections]
        sent = [_send(c, target, r) for c, r in zip(connections, requests, strict=True)]
        answers = [
            self._answer(c, target, r, was_kept, failure)
            for c, r, was_kept, failure in zip(connections, requests, kept, sent, strict=True)
        ]
        idle.extend(c for c in connections if c.kept)
        return answers

    def _connect(self, target: _Target) -> _Connection:
        if target.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()  # costly: once
            return _Connection(
                http.client.HTTPSConnection(
                    target.host, target.port, timeout=self.timeout_s, context=self._tls
                )
            )
        return _Connection(
            http.client.HTTPConnection(target.host, target.port, timeout=self.timeout_s)
        )

    @staticmethod
    def _answer(
        connection: _Connection,
        target: _Target,
        request: Request,
        was_kept: bool,
        failure: Exception | None,
    ) -> Answer:
        if failure is None:
            try:
                return _read(connection)
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
        if not (was_kept and isinstance(failure, _STALE)):
            return _failed(failure)
        # the connection had gone stale while idle: once more, on a new one
        failure = _send(connection, target, request)
        if failure is None:
            try:
                return _read(connection)
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
        return _failed(failure)


def _send(connection: _Connection, target: _Target, request: Request) -> Exception | None:
    body, headers = request
    try:
        connection.http.request("POST", target.path, body=body, headers=headers)
        return None
    except (OSError, http.client.HTTPException) as exc:
        _close(connection)
        return exc


def _read(connection: _Connection) -> Answer:
    try:
        response = connection.http.getresponse()
        response.read()
    except BaseException:
        _close(connection)
        raise
    if response.will_close:
        _close(connection)
    else:
        connection.kept = True
    ok = 200 <= response.status < 300
    return Answer(response.status, None if ok else f"HTTP {response.status}")


def _close(connection: _Connection) -> None:
    connection.http.close()  # the next request opens a new one
    connection.kept = False


def _failed(exc: BaseException) -> Answer:
    return Answer(None, f"{type(exc).__name__}: {exc}")
