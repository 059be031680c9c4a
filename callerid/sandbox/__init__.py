"""A faithful local Plivo Verified Caller ID API that also plays the phone network.

Public names: `SandboxBackend` (state and rules, no web), `create_app` (Starlette), `PhoneNetwork`
and `Behaviour` (OTP replies as signed webhooks / drop files), `SandboxServer` (uvicorn in a
thread), `Fault`/`FaultKind`/`FaultQueue`, the default credentials and the inbox number.
"""

from __future__ import annotations

from callerid.sandbox.app import create_app
from callerid.sandbox.backend import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SUBACCOUNTS,
    SANDBOX_INBOX_NUMBER,
    SandboxBackend,
)
from callerid.sandbox.errors import SandboxError
from callerid.sandbox.faults import Fault, FaultKind, FaultQueue, Operation
from callerid.sandbox.network import Behaviour, PhoneNetwork
from callerid.sandbox.server import SandboxServer, ThreadedUvicorn

__all__ = [
    "DEFAULT_AUTH_ID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_SUBACCOUNTS",
    "SANDBOX_INBOX_NUMBER",
    "Behaviour",
    "Fault",
    "FaultKind",
    "FaultQueue",
    "Operation",
    "PhoneNetwork",
    "SandboxBackend",
    "SandboxError",
    "SandboxServer",
    "ThreadedUvicorn",
    "create_app",
]
