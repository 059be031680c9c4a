"""Keep the pipeline's clock in step with the sandbox's, so tests move both by moving one.

The sandbox answers `GET /_sandbox/clock` with `{"now": ISO, "offset_s": N}`; the pipeline's
`OffsetClock` copies `offset_s` (it never moves backwards). Against real Plivo there is nothing
to follow and the clock is the system clock.
"""

from __future__ import annotations

import logging

import httpx

from callerid.clock import OffsetClock

log = logging.getLogger(__name__)


class SandboxClockFollower:
    """An `OffsetClock` plus `sync()`, which copies the sandbox's offset."""

    def __init__(self, sandbox_url: str, clock: OffsetClock | None = None) -> None:
        self.url = sandbox_url.rstrip("/") + "/_sandbox/clock"
        self.clock = clock or OffsetClock()
        self._http: httpx.AsyncClient | None = None

    async def sync(self) -> float:
        """Copy the sandbox's offset; on a failed read keep the last one (and say so)."""
        if self._http is None:  # one client: building one (TLS context and all) costs ~0.1 s
            self._http = httpx.AsyncClient(timeout=5.0)
        try:
            response = await self._http.get(self.url)
            response.raise_for_status()
            offset = float(response.json()["offset_s"])
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
            log.warning("could not read the sandbox clock at %s: %s", self.url, exc)
            return self.clock.offset_s
        self.clock.set_offset(offset)
        return self.clock.offset_s

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
