"""Serving our ASGI apps (the inbox webhook, the sandbox) so that no client can starve them.

`ThreadedUvicorn` runs an app on uvicorn in a thread with `ServerLimits`: header, body and
keep-alive deadlines, a connection cap below the descriptor limit (raised to the hard limit at
start), early answers that close instead of reading a huge body, and rate-limited error logs.
"""

from __future__ import annotations

from callerid.serving.limits import ServerLimits, connection_cap, raise_open_file_limit
from callerid.serving.logs import RepeatedLogFilter, RepeatLimiter
from callerid.serving.protocol import ConnectionGuard
from callerid.serving.runner import ThreadedUvicorn, limit_repeated_logs

__all__ = [
    "ConnectionGuard",
    "RepeatLimiter",
    "RepeatedLogFilter",
    "ServerLimits",
    "ThreadedUvicorn",
    "connection_cap",
    "limit_repeated_logs",
    "raise_open_file_limit",
]
