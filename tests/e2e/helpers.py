"""End-to-end test helpers: number lists, a clock driver, checks against the sandbox."""

from __future__ import annotations

import csv
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from callerid.plivo.models import parse_timestamp
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN


def sandbox_env(sandbox_url: str, database_url: str, output_dir: Path) -> dict[str, str]:
    """The environment that points the CLI, the flows and `load_settings` at a sandbox and a
    ledger (set it with `monkeypatch.setenv`, so it is restored after the test)."""
    return {
        "PLIVO_AUTH_ID": DEFAULT_AUTH_ID,
        "PLIVO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "PLIVO_API_URL": sandbox_url,
        "CALLERID_DATABASE_URL": database_url,
        "CALLERID_OUTPUT_DIR": str(output_dir),
    }


def valid_numbers(count: int, prefix: str = "+1415555") -> list[str]:
    """`count` distinct numbers that phonenumbers calls valid, in a fictional 555 range."""
    found: list[str] = []
    width = 15 - len(prefix) + 1
    for i in range(10 ** min(width, 4)):
        candidate = f"{prefix}{i:04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError(f"only {len(found)} valid numbers under {prefix}")


def write_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    rows = list(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class ClockDriver(threading.Thread):
    """Moves the sandbox clock past the OTP window whenever the sandbox has been quiet a while.

    "Quiet" = no API request for `quiet_s`: every reply that was coming has come and been
    submitted, so what is left waits for a window to end. Stops after `max_advances`.
    """

    def __init__(
        self,
        sandbox_url: str,
        *,
        quiet_s: float = 2.0,
        step_s: float = 16.5 * 60,
        max_advances: int = 6,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(daemon=True, name="clock-driver")
        self.base = sandbox_url.rstrip("/")
        self.quiet_s = quiet_s
        self.step_s = step_s
        self.max_advances = max_advances
        self.advances = 0
        self.ready = ready  # an extra condition, e.g. "every number that replies is verified"
        self._halt = threading.Event()

    def requests(self, http: httpx.Client) -> int:
        return int(http.get(f"{self.base}/_sandbox/stats").json()["total_requests"])

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            last, since = self.requests(http), time.monotonic()
            while not self._halt.wait(0.2) and self.advances < self.max_advances:
                now_requests = self.requests(http)
                if now_requests != last:
                    last, since = now_requests, time.monotonic()
                elif (
                    last > 0
                    and time.monotonic() - since >= self.quiet_s
                    and (self.ready is None or self.ready())
                ):
                    http.post(f"{self.base}/_sandbox/clock", json={"advance_s": self.step_s})
                    self.advances += 1
                    since = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def sandbox_json(sandbox_url: str, path: str) -> Any:
    return httpx.get(f"{sandbox_url.rstrip('/')}/_sandbox/{path}", timeout=10).json()


def otps_by_number(messages: list[dict[str, Any]]) -> dict[str, list[tuple[datetime, datetime]]]:
    sent: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for m in messages:
        start, end = parse_timestamp(m["sent_at"]), parse_timestamp(m["expires_at"])
        assert start is not None and end is not None
        sent[m["phone_number"]].append((start, end))
    return {k: sorted(v) for k, v in sent.items()}


def reinitiated_while_live(messages: list[dict[str, Any]]) -> dict[str, int]:
    """Numbers the sandbox sent a new OTP to while an earlier one of theirs was still valid."""
    bad: dict[str, int] = {}
    for number, windows in otps_by_number(messages).items():
        overlaps = sum(1 for (_, end), (start, _) in itertools.pairwise(windows) if start < end)
        if overlaps:
            bad[number] = overlaps
    return bad
