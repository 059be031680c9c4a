"""Run the sandbox (or any ASGI app) with uvicorn in a background thread on 127.0.0.1.

    with SandboxServer(inbox_url="http://127.0.0.1:9000/plivo/sms/") as sandbox:
        client = PlivoClient(base_url=sandbox.url, auth_id=DEFAULT_AUTH_ID, ...)
        sandbox.backend.seed_verified("+14155550100")

The socket is bound before the thread starts, so `.url` is known at once (port 0 = a free port);
start and stop take well under a second.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from callerid.clock import Clock
from callerid.sandbox.app import create_app
from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.faults import FaultQueue
from callerid.sandbox.network import PhoneNetwork

_DROP_MESSAGE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Injected connection drops are intended: keep uvicorn from logging each as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


class ThreadedUvicorn:
    """An ASGI app served by uvicorn in a daemon thread; a context manager."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
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
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

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


class SandboxServer(ThreadedUvicorn):
    """The sandbox API + phone network, ready for tests and `callerid sandbox serve`."""

    def __init__(
        self,
        backend: SandboxBackend | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        inbox_url: str | None = None,
        reply_delay_s: float = 1.0,
        latency_ms: int = 0,
        drop_dir: Path | str | None = None,
        late_s: float = 60.0,
        clock: Clock | None = None,
        seed: int | None = None,
        subaccounts: Mapping[str, str] | None = None,
    ) -> None:
        self.backend = backend or SandboxBackend(clock=clock, seed=seed, subaccounts=subaccounts)
        self.faults = FaultQueue()
        self.network = PhoneNetwork(
            self.backend,
            inbox_url=inbox_url,
            drop_dir=drop_dir,
            reply_delay_s=reply_delay_s,
            late_s=late_s,
            seed=seed,
        )
        app = create_app(self.backend, self.network, self.faults, latency_ms=latency_ms)
        super().__init__(app, host=host, port=port)
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)

    def start(self) -> None:
        self.network.start()
        super().start()

    def stop(self) -> None:
        self.app.state.closing = True  # releases requests held open by a "never answer" fault
        super().stop()
        self.network.stop()

    def __enter__(self) -> SandboxServer:
        self.start()
        return self


_QUIET_DROPS = _QuietDrops()  # one instance: addFilter ignores a filter it already has
