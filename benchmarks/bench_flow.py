"""Benchmark: 2,000 numbers through bulk_verify against the sandbox at 300 requests / 5 s.

Prints, for the flow and for the same core calls without Prefect (same process, same sandbox
settings, fresh sandbox and ledger each):

* wall time / theoretical minimum, where the minimum is (2 x numbers + list pages) / 60 s
  (one initiate and one complete per number, plus the list pages, at 300 per 5 s). Goal <= 1.10.
* 429 responses the sandbox sent (goal: 0).
* orchestration overhead per 1,000 numbers: (flow wall - plain wall) / (numbers / 1000).

Replies are instant (the sandbox texts each OTP the moment it is sent). Prefect runs on a fresh
test server started before timing (its start-up is not part of the flow's cost).

    uv run --frozen python benchmarks/bench_flow.py [--numbers 2000]
"""

from __future__ import annotations

import os
import tempfile

# Before prefect is imported anywhere (prefect-notes §0.6): private home, quiet, no telemetry.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-prefect-")
os.environ.pop("PREFECT_API_URL", None)
os.environ.update(
    DO_NOT_TRACK="1",
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    PREFECT_LOGGING_LEVEL="WARNING",
    PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
)

import argparse
import asyncio
import csv
import math
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import open_ledger
from callerid.pipeline import PipelineOptions
from callerid.pipeline.plain import run_plain
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxServer
from callerid.settings import load_settings

RATE, PERIOD = 300, 5.0
PREFIXES = ("+1415555", "+1312555", "+1202555", "+1646555", "+1617555")


def numbers(count: int) -> list[str]:
    found: list[str] = []
    for prefix in PREFIXES:
        for i in range(10_000):
            candidate = f"{prefix}{i:04d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
                found.append(candidate)
                if len(found) == count:
                    return found
    raise SystemExit(f"only {len(found)} valid numbers available")


def write_input(folder: Path, count: int) -> Path:
    path = folder / "numbers.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", "alias"])
        writer.writerows([n, f"line {i}"] for i, n in enumerate(numbers(count)))
    return path


Runner = Callable[[Path, str], Awaitable[dict[str, Any]]]


def measure(label: str, count: int, runner: Runner) -> dict[str, Any]:
    """Fresh sandbox, receiver and ledger; run once; return wall time and the sandbox's stats."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    url = f"sqlite:///{folder / 'ledger.sqlite3'}"
    ledger = open_ledger(url)
    csv_path = write_input(folder, count)
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    clock = OffsetClock()  # shared: the receiver stamps received_at on the sandbox's clock
    inbox = WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock)
    with inbox, SandboxServer(inbox_url=inbox.url, reply_delay_s=0.0, clock=clock) as sandbox:
        os.environ.update(
            PLIVO_AUTH_ID=DEFAULT_AUTH_ID,
            PLIVO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
            PLIVO_API_URL=sandbox.url,
            CALLERID_DATABASE_URL=url,
            CALLERID_OUTPUT_DIR=str(folder / "out"),
            CALLERID_RATE_LIMIT_REQUESTS=str(RATE),
            CALLERID_RATE_LIMIT_PERIOD_S=str(PERIOD),
        )
        started = time.perf_counter()
        result = asyncio.run(runner(csv_path, f"bench-{label}"))
        wall = time.perf_counter() - started
        stats = httpx.get(f"{sandbox.url}/_sandbox/stats", timeout=30).json()
    ledger.close()
    verified = int(result["counts"].get("verified", 0))
    pages = 1 + math.ceil(count / 20)  # before (empty account) and after (all verified)
    minimum = (2 * count + pages) / (RATE / PERIOD)
    return {
        "label": label,
        "wall_s": wall,
        "minimum_s": minimum,
        "ratio": wall / minimum,
        "requests": stats["total_requests"],
        "rate_limited": stats["rate_limited"],
        "verified": verified,
    }


async def plain(csv_path: Path, run_id: str) -> dict[str, Any]:
    options = PipelineOptions(max_in_flight=300, batch_size=100, poll_interval_s=0.2)
    result = await run_plain(
        csv_path, load_settings(), options, run_id=run_id, follow_sandbox_clock=True
    )
    return result.as_dict()


async def flow(csv_path: Path, run_id: str) -> dict[str, Any]:
    from flows.bulk_verify import bulk_verify

    return await bulk_verify(
        str(csv_path),
        max_in_flight=300,
        batch_size=100,
        poll_interval_s=0.2,
        run_id=run_id,
        follow_sandbox_clock=True,
        shared_rate_limit=False,
    )


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['label']:>5}: {r['verified']} verified, wall {r['wall_s']:.1f} s, "
        f"theoretical minimum {r['minimum_s']:.1f} s, ratio {r['ratio']:.3f} (goal <= 1.10), "
        f"requests {r['requests']}, 429s {r['rate_limited']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--numbers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs (medians printed)")
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    plain_rows: list[dict[str, Any]] = []
    flow_rows: list[dict[str, Any]] = []
    # Both modes run with the test server up, alternating, so background load hits both alike.
    with prefect_test_harness(server_startup_timeout=240):
        for _ in range(args.repeat):
            plain_rows.append(measure("plain", args.numbers, plain))
            print(_line(plain_rows[-1]), flush=True)
            flow_rows.append(measure("flow", args.numbers, flow))
            print(_line(flow_rows[-1]), flush=True)
    plain_wall = statistics.median(r["wall_s"] for r in plain_rows)
    flow_wall = statistics.median(r["wall_s"] for r in flow_rows)
    minimum = flow_rows[0]["minimum_s"]
    print(
        f"median ratio: flow {flow_wall / minimum:.3f}, plain {plain_wall / minimum:.3f}; "
        f"429s: flow {sum(r['rate_limited'] for r in flow_rows)}, "
        f"plain {sum(r['rate_limited'] for r in plain_rows)}"
    )
    overhead = (flow_wall - plain_wall) / (args.numbers / 1000)
    print(f"orchestration overhead (flow - plain): {overhead:.2f} s per 1,000 numbers")


if __name__ == "__main__":
    main()
