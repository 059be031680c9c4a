"""Benchmark: the client process's CPU per API request (issue 14), without Prefect or the ledger.

The sandbox runs in a child process (unthrottled, `--latency-ms` per request); here one
PlivoClient with an unthrottled limiter initiates fresh numbers in batches of `--batch` (all at
once, as the run's batch steps do), then completes them the same way (the sandbox hands each OTP
over a pipe, as the phone network would). Printed: CPU milliseconds of this process per API
request (user + system, all threads) and requests/s. The first is the figure to compare across
changes on a shared machine; the second moves with load.

To compare with an older commit: `git archive OLD | tar -x -C DIR` and run this file with
`PYTHONPATH=DIR` (a script's own folder, not the current one, comes first on sys.path).

    uv run --frozen python benchmarks/bench_client_cpu.py [--requests 4000] [--batch 100]
    uv run --frozen python benchmarks/bench_client_cpu.py --profile /tmp/client.prof
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection

from callerid.plivo import PlivoClient, RateLimiter
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxBackend, SandboxServer

UNTHROTTLED = (10_000_000, 5.0)


def serve(conn: Connection, phone: Connection, latency_ms: int) -> None:
    backend = SandboxBackend(seed=1, rate=UNTHROTTLED)
    backend.subscribe(lambda sent: phone.send((sent.verification_uuid, sent.otp)))
    with SandboxServer(backend, reply_delay_s=3600, latency_ms=latency_ms) as sandbox:
        conn.send(sandbox.url)
        conn.recv()


class Phone:
    """The OTPs sent so far, received by a thread (a pipe left unread would stall the sandbox)."""

    def __init__(self, conn: Connection) -> None:
        self.codes: dict[str, str] = {}
        self._conn = conn
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                uuid, otp = self._conn.recv()
                self.codes[uuid] = otp

    def drain(self, expected: int) -> None:
        while len(self.codes) < expected:
            time.sleep(0.01)


async def drive(url: str, phone: Phone, count: int, batch: int) -> tuple[float, float, int]:
    limiter = RateLimiter(*UNTHROTTLED)
    numbers = [f"+1415{200 + n // 10_000:03d}{n % 10_000:04d}" for n in range(count + 1)]
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, url, limiter=limiter) as client:
        warm = await client.initiate(numbers.pop())  # first-request costs outside the clock
        phone.drain(1)
        await client.complete(warm.verification_uuid, phone.codes[warm.verification_uuid])
        uuids: dict[str, str] = {}
        cpu = wall = 0.0

        async def initiate(number: str) -> None:
            uuids[number] = (await client.initiate(number)).verification_uuid

        async def complete(number: str) -> None:
            uuid = uuids[number]
            await client.complete(uuid, phone.codes[uuid], phone_number=number)

        for step in (initiate, complete):
            cpu_start, wall_start = time.process_time(), time.monotonic()
            for at in range(0, count, batch):  # as the run's batches: all at once, then the next
                await asyncio.gather(*(step(n) for n in numbers[at : at + batch]))
            cpu += time.process_time() - cpu_start
            wall += time.monotonic() - wall_start
            phone.drain(count + 1)
    return cpu, wall, 2 * count


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="API requests (half initiates)")
    parser.add_argument("--batch", type=int, default=100, help="requests gathered at once")
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=10,
        help="sandbox latency per request: a server that is not instant keeps connections busy "
        "and the pool full, as in a whole run on a shared machine (0: a pool of a few)",
    )
    parser.add_argument("--profile", help="write a cProfile (tottime) of the measured phases here")
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    phone_in, phone_out = multiprocessing.Pipe(duplex=False)
    runner = multiprocessing.get_context("spawn").Process(
        target=serve, args=(theirs, phone_out, args.latency_ms)
    )
    runner.start()
    try:
        url = ours.recv()
        profiler = cProfile.Profile() if args.profile else None
        if profiler is not None:
            profiler.enable()
        cpu, wall, requests = asyncio.run(
            drive(url, Phone(phone_in), args.requests // 2, args.batch)
        )
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    finally:
        ours.send("stop")
        runner.join(timeout=10)
    print(
        f"{requests} requests, batches of {args.batch}, {args.latency_ms} ms latency: "
        f"{1000 * cpu / requests:.3f} ms CPU per request (this process), "
        f"{requests / wall:.0f} requests/s, load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
