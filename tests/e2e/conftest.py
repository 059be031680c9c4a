"""Fixtures for whole-flow tests: one Prefect test server for the session, and a sandbox world.

`tests/conftest.py` has already pointed PREFECT_HOME at a temp dir, turned telemetry off and set
WARNING logs before anything imported prefect. The harness starts one SQLite-backed Prefect
server for the session (its fresh migration takes ~20-30 s on a slow 2-core box; the timeout is
generous on purpose, prefect-notes §6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import Ledger, open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxError, SandboxServer
from callerid.sandbox.models import CallerId as SandboxCallerId
from callerid.sandbox.state import DEFAULT_SUBACCOUNTS
from tests.e2e.helpers import sandbox_env


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The URL of the session's Prefect test server (flows in this process run against it)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=240):
        yield str(PREFECT_API_URL.value())


@dataclass
class World:
    """A sandbox and a webhook receiver in this process, and the settings a flow needs."""

    sandbox: SandboxServer
    inbox: WebhookServer
    ledger: Ledger
    database_url: str
    output_dir: Path

    def caller_id(self, number: str) -> SandboxCallerId | None:
        """The sandbox's own record of a verified caller ID, or None."""
        try:
            return self.sandbox.backend.get(DEFAULT_AUTH_ID, number)
        except SandboxError:
            return None

    @property
    def env(self) -> dict[str, str]:
        return sandbox_env(self.sandbox.url, self.database_url, self.output_dir)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Sandbox (replies after 0.2 s) -> signed webhook -> receiver -> inbox table of the ledger
    the flow uses. The flow is told (`follow_sandbox_clock`) to follow the sandbox's clock."""
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = open_ledger(url)
    clock = OffsetClock()  # the sandbox's; the receiver stamps received_at with it too
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    inbox = WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock)
    sandbox = SandboxServer(
        inbox_url=inbox.url,
        reply_delay_s=0.2,
        seed=7,
        clock=clock,
        subaccounts=DEFAULT_SUBACCOUNTS,
    )
    with inbox, sandbox:
        w = World(sandbox, inbox, ledger, url, tmp_path / "out")
        for key, value in w.env.items():
            monkeypatch.setenv(key, value)
        yield w
    ledger.close()
