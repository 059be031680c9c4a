"""Benchmark: list 1,000 caller IDs through the account's limiter; print requests/s ÷ the limit.

    uv run --frozen python benchmarks/bench_reconcile.py [--rate 300/5] [--rounds 10] [--gcl]

The sandbox (in a thread, real HTTP on 127.0.0.1) holds 1,000 caller IDs and enforces the same
limit as the client. Each round lists all of them (50 pages, fetched concurrently by
`callerid.reconcile.account.list_account`). Printed, all measured in this run:

* `baseline`: the same listing, unlimited on both sides (the cost of the HTTP round trips);
* `paced`: through a limiter of the account's limit; `ratio` = requests/s ÷ limit over the whole
  run (goal >= 0.9; 12 rounds last ~10 s, two periods, so an idle account's first burst weighs
  little);
* `429s`: answers the sandbox had to refuse (must be 0: pacing never overshoots).

`--gcl` feeds the limiter from the account's Prefect global concurrency limit, as workers under a
Prefect server do (needs PREFECT_API_URL; the limit is created or updated first).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from callerid.plivo import PlivoClient, RateLimiter
from callerid.reconcile.account import list_account
from callerid.reconcile.models import Scope
from callerid.sandbox.backend import SandboxBackend
from callerid.sandbox.server import SandboxServer
from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

CALLER_IDS = 1000
UNLIMITED = 10**6


def parse_rate(text: str) -> tuple[int, float]:
    count, _, period = text.partition("/")
    return int(count), float(period or 5)


async def list_rounds(url: str, limiter: RateLimiter, rounds: int) -> tuple[int, float]:
    """(requests, seconds) to list every caller ID `rounds` times."""
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, url, limiter=limiter) as client:
        started = time.monotonic()
        for _ in range(rounds):
            listed = await list_account(client, Scope(DEFAULT_AUTH_ID))
            assert len(listed) == CALLER_IDS, len(listed)
        return limiter.granted, time.monotonic() - started


def sandbox(rate: tuple[int, float]) -> SandboxServer:
    backend = SandboxBackend(rate=rate)
    for i in range(CALLER_IDS):
        backend.seed_verified(f"+1415555{i:04d}", alias=f"id-{i}")
    return SandboxServer(backend)


def run(label: str, rate: tuple[int, float], make: Callable[[], RateLimiter], rounds: int) -> float:
    """One fresh sandbox enforcing `rate`; print requests/s and its ratio to the limit."""
    n, period = rate
    with sandbox(rate) as server:
        requests, elapsed = asyncio.run(list_rounds(server.url, make(), rounds))
        refused = server.backend.stats()["rate_limited"]
    per_s = requests / elapsed
    versus = (
        f"ratio to the limit ({n}/{period:g} s = {n / period:g}/s): {per_s / (n / period):.2f}"
        if n < UNLIMITED
        else "no limit"
    )
    print(
        f"{label:>8}: {requests} requests in {elapsed:6.2f} s = {per_s:6.1f} requests/s; "
        f"{versus}; 429s: {refused}"
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", dest="limit", type=parse_rate, default=(300, 5.0))
    parser.add_argument("--rounds", type=int, default=12, help="listings of the 1,000 IDs")
    parser.add_argument("--gcl", action="store_true", help="feed the limiter from a Prefect GCL")
    args = parser.parse_args()
    n, period = args.limit
    print(f"listing {CALLER_IDS} caller IDs x {args.rounds} (50 pages each)")
    base = run("baseline", (UNLIMITED, 1.0), lambda: RateLimiter(UNLIMITED, 1.0), args.rounds)
    paced = run("paced", args.limit, lambda: RateLimiter(n, period), args.rounds)
    print(f"paced time / baseline time: {paced / base:.1f}x")
    if args.gcl:
        from tasks.account import ensure_account_limit, gcl_slot_source

        shape = ensure_account_limit(DEFAULT_AUTH_ID, n, period)
        print(f"GCL {shape.name}: {shape.limit} slots, decay {shape.slot_decay_per_second:g}/s")
        run(
            "gcl",
            args.limit,
            lambda: RateLimiter(
                n, period, slot_source=gcl_slot_source(shape.name), slot_block=shape.block
            ),
            args.rounds,
        )


if __name__ == "__main__":
    main()
