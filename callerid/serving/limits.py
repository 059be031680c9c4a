"""How long a connection may take, and how many may be open: the limits all our servers run with.

A connection is only ever in one of three states: waiting for the request's headers (at most
`header_timeout_s` from the connection or from the end of the previous response; idle between
requests at most `keep_alive_s`), receiving the body (at most `body_timeout_s` from the headers),
or being answered (no limit here: the app decides). Only the first two can be held open by a
client that sends nothing or trickles, so only those are timed, and only those are closed to make
room when `max_connections` are open.
"""

from __future__ import annotations

from dataclasses import dataclass

FD_RESERVE = 128  # descriptors left for everything else: database files, logs, outbound sockets
MIN_CONNECTIONS = 8


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 5.0
    body_timeout_s: float = 5.0  # a webhook form is a few KB: it arrives at once or not at all
    keep_alive_s: int = 5  # uvicorn's own idle timer between two requests (whole seconds)
    max_connections: int = 1000  # lowered further when the descriptor limit is low
    max_header_bytes: int = 16 * 1024
    spare_descriptors: int = 128  # beyond twice the cap (see `connection_cap`)
    # the kernel's queue of connections not yet accepted (it costs no descriptor; Linux caps it at
    # net.core.somaxconn, 4096 by default), and the most the acceptor takes in one wake-up
    listen_backlog: int = 4096
    drain_bytes: int = 64 * 1024  # after an early answer (413...), the most of a body read on

    def __post_init__(self) -> None:
        if min(self.header_timeout_s, self.body_timeout_s) <= 0 or self.keep_alive_s < 1:
            raise ValueError("timeouts must be positive")
        if min(self.max_connections, self.listen_backlog) < 1 or self.spare_descriptors < 0:
            raise ValueError("max_connections and listen_backlog must be positive")
        if self.max_header_bytes < 1024:
            raise ValueError("max_header_bytes must be at least 1 KB")


def raise_open_file_limit() -> int | None:
    """Raise this process's soft RLIMIT_NOFILE to the hard one; the soft limit now (None: none)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows: no such limit to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return None if soft == resource.RLIM_INFINITY else soft
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):  # pragma: no cover - a sandboxed process may not be allowed
        return soft
    return hard


def connection_cap(limits: ServerLimits, open_file_limit: int | None) -> int:
    """At most half the descriptors left after the spares and the reserve, and never above
    `limits.max_connections`: the server must never run out of descriptors for its own files.

    Half, because within one wake-up the acceptor may hold up to the cap of new sockets while as
    many evicted connections have not closed yet (see `accept`)."""
    if open_file_limit is None:
        return limits.max_connections
    headroom = (open_file_limit - limits.spare_descriptors - FD_RESERVE) // 2
    return min(limits.max_connections, max(MIN_CONNECTIONS, headroom))
