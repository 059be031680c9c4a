"""The embedded default: with no Plivo credentials, one sandbox account that persists beside the
ledger, in `<output folder>/sandbox-account.json` (issue 11).

`callerid run`, `callerid reconcile`, the deployed flows and `callerid sandbox serve --state FILE`
all open that file, so what one of them verified, renamed or deleted, the next one finds: an
import, a number deleted or renamed on the account, the nightly reconcile finding it, without
Plivo. Each process serves the account in-process on 127.0.0.1 (persistence.py says how
processes share the file). It is the public sandbox account: the well-known main token and the
two well-known subaccounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from callerid.clock import Clock
from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.server import SandboxServer
from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, DEFAULT_SUBACCOUNTS

STATE_FILE_NAME = "sandbox-account.json"

__all__ = [
    "DEFAULT_AUTH_ID",
    "DEFAULT_AUTH_TOKEN",
    "STATE_FILE_NAME",
    "embedded_backend",
    "embedded_sandbox",
    "state_path",
]


def state_path(output_dir: Path | str) -> Path:
    return Path(output_dir) / STATE_FILE_NAME


def embedded_backend(output_dir: Path | str, clock: Clock | None = None) -> SandboxBackend:
    """The embedded account's backend, following its state file (created when absent)."""
    return SandboxBackend(
        clock=clock, subaccounts=DEFAULT_SUBACCOUNTS, state_file=state_path(output_dir)
    )


@contextmanager
def embedded_sandbox(output_dir: Path | str) -> Iterator[SandboxServer]:
    """The embedded account served on 127.0.0.1 for as long as the block runs (no phone
    network deliveries: for reading and changing the account, e.g. a reconcile)."""
    with SandboxServer(embedded_backend(output_dir)) as server:
        yield server
