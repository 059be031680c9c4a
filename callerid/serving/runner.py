"""`ThreadedUvicorn`: an ASGI app served by uvicorn in a daemon thread, with our limits.

    with ThreadedUvicorn(app, host="127.0.0.1", port=0) as server:
        httpx.get(server.url + "/healthz")

The socket is bound before the thread starts, so `.url` is known at once (port 0 = a free port);
start and stop take well under a second. At construction the process's soft descriptor limit is
raised to the hard one, and the connection cap is set well below it (see `limits`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import uvicorn

from callerid.serving.accept import Acceptor
from callerid.serving.limits import ServerLimits, connection_cap, raise_open_file_limit
from callerid.serving.logs import RepeatedLogFilter, RepeatLimiter, loop_exception_handler
from callerid.serving.protocol import ConnectionGuard, GuardedConfig, GuardedH11Protocol

# One limiter for the process: the loggers it guards are process-wide too.
LOG_LIMITER = RepeatLimiter()
_LOG_FILTER = RepeatedLogFilter(LOG_LIMITER)  # one instance: addFilter ignores a filter it has
GUARDED_LOGGERS = (
    "uvicorn.error",
    "asyncio",
    "callerid.serving.protocol",
    "callerid.inbox.webhook",  # a refused request is a warning: a flood of them is bounded
)


def limit_repeated_logs(names: Iterable[str] = ()) -> None:
    """Rate-limit WARNING and above on uvicorn's, asyncio's, ours and the `names` loggers
    (each exactly: a filter on a logger does not see what its children log)."""
    for name in (*GUARDED_LOGGERS, *names):
        logging.getLogger(name).addFilter(_LOG_FILTER)


class _Server(uvicorn.Server):
    """uvicorn's server, with our acceptor on the listening sockets instead of asyncio's."""

    config: GuardedConfig
    acceptors: list[Acceptor]

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(LOG_LIMITER))
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own startup for given sockets, but the asyncio server is not started: it is
        # kept only so that uvicorn's shutdown closes the sockets
        if not sockets:
            raise ValueError("ThreadedUvicorn serves the sockets it bound")
        await self.lifespan.startup()
        config, loop = self.config, asyncio.get_running_loop()

        def create_protocol() -> GuardedH11Protocol:
            return GuardedH11Protocol(config, self.server_state, self.lifespan.state)

        self.servers, self.acceptors = [], []
        for sock in sockets:
            server = await loop.create_server(create_protocol, sock=sock, start_serving=False)
            self.servers.append(server)
            acceptor = Acceptor(
                loop,
                sock,
                create_protocol,
                config.guard,
                burst=config.limits.listen_backlog,
                header_timeout_s=config.limits.header_timeout_s,
            )
            acceptor.start(config.limits.listen_backlog)
            self.acceptors.append(acceptor)
        self.started = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in self.acceptors:
            acceptor.close()
        await super().shutdown(sockets)


class ThreadedUvicorn:
    """An ASGI app served by uvicorn in a daemon thread; a context manager."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: ServerLimits | None = None,
        log_names: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.host = host
        self.limits = limits or ServerLimits()
        self.max_connections = connection_cap(self.limits, raise_open_file_limit())
        # proto must say TCP: asyncio only sets TCP_NODELAY on sockets that do, and without it
        # every response waits ~40 ms for a delayed ACK (measured: 44 ms vs 0.8 ms a request)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()  # a port in use must not also leak the socket
            raise
        self.port: int = self._socket.getsockname()[1]
        self._config = GuardedConfig(app, self.limits, self.max_connections)
        self._server = _Server(self._config)
        self._thread: threading.Thread | None = None
        limit_repeated_logs(log_names)

    @property
    def guard(self) -> ConnectionGuard:
        """The open connections, and how many were closed for the cap or a deadline."""
        return self._config.guard

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> ThreadedUvicorn:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
