"""Run the sandbox with uvicorn in a background thread (the shared runner: `callerid.serving`).

    with SandboxServer(inbox_url="http://127.0.0.1:9000/plivo/sms/") as sandbox:
        client = PlivoClient(base_url=sandbox.url, auth_id=DEFAULT_AUTH_ID, ...)
        sandbox.backend.seed_verified("+14155550100")

The socket is bound before the thread starts, so `.url` is known at once (port 0 = a free port);
start and stop take well under a second. The sandbox runs with the same limits as the inbox
server (`ServerLimits`): deadlines, a connection cap, rate-limited error logs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from callerid.clock import Clock
from callerid.sandbox.app import create_app
from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.faults import FaultQueue
from callerid.sandbox.network import PhoneNetwork
from callerid.serving import ServerLimits, ThreadedUvicorn

__all__ = ["SandboxServer", "ThreadedUvicorn"]  # ThreadedUvicorn: its home was here

_DROP_MESSAGE = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    """Injected connection drops are intended: keep uvicorn from logging each as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


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
        limits: ServerLimits | None = None,
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
        super().__init__(
            app, host=host, port=port, limits=limits, log_names=("callerid.sandbox.network",)
        )
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
