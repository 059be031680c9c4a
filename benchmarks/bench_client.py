"""Benchmark: how close does PlivoClient get to the account's rate limit without a single 429?

Starts the sandbox (uvicorn on 127.0.0.1) enforcing `--rate` and answering every API request after
`--latency-ms`, then drives one PlivoClient from many concurrent workers, each looping
initiate -> complete -> get on fresh numbers (the sandbox hands each OTP over a pipe, as the
phone network would). Requests are timed by their arrival at the sandbox; the rate is the mean
number of arrivals per period-long window of the run. It prints

    achieved requests/s / configured limit   (goal >= 0.95)
    429s answered by the sandbox              (goal 0)

By default the sandbox runs in a child process started by this script, as Plivo would be another
machine: run in a thread of this process (`--in-process`) it shares one GIL with the client, and
the GIL hand-offs between the two busy event loops delay arrivals by up to a few hundred ms, which
measures the interpreter rather than the client.

    uv run python benchmarks/bench_client.py                 # 300/5, 250 ms, 30 s
    uv run python benchmarks/bench_client.py --short         # 300/5, 250 ms, 15 s
    uv run python benchmarks/bench_client.py --rate 60/1 --latency-ms 50 --periods 5
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import threading
import time
from bisect import bisect_left
from multiprocessing.connection import Connection
from typing import Any

from callerid.plivo import PlivoClient, PlivoError, RateLimiter
from callerid.sandbox import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    SandboxBackend,
    SandboxServer,
)
from callerid.sandbox.errors import TooManyRequestsError


class TimedBackend(SandboxBackend):
    """The sandbox backend, also noting when each API request arrived (before any latency)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.arrivals: list[float] = []
        self._arrivals_lock = threading.Lock()
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

        self.refusals: list[float] = []  # when the sandbox answered 429

    def record_request(self) -> None:
        with self._arrivals_lock:
            self.arrivals.append(time.monotonic())
        super().record_request()

    def admit(self, auth_id: str) -> None:
        try:
            super().admit(auth_id)
        except TooManyRequestsError:
            self.refusals.append(time.monotonic())
            raise


def serve(conn: Connection, phone: Connection, limit: int, period: float, latency_ms: int) -> None:
    """Run the sandbox until told to stop; then report arrival times and the 429 count.

    Every OTP sent goes down `phone` as (verification_uuid, otp): the phone network's part.
    time.monotonic is system-wide on Linux, so arrival times compare across processes."""
    backend = TimedBackend(seed=1, rate=(limit, period))
    backend.subscribe(lambda sent: phone.send((sent.verification_uuid, sent.otp)))
    with SandboxServer(backend, latency_ms=latency_ms, reply_delay_s=3600) as sandbox:
        conn.send(sandbox.url)
        conn.recv()
        conn.send((list(backend.arrivals), list(backend.refusals)))


class Phone:
    """Receives OTPs from the sandbox process in a thread; workers look theirs up."""

    def __init__(self, conn: Connection) -> None:
        self.codes: dict[str, str] = {}
        self._conn = conn
        threading.Thread(target=self._listen, daemon=True).start()

    def _listen(self) -> None:
        try:
            while True:
                uuid, otp = self._conn.recv()
                self.codes[uuid] = otp
        except (EOFError, OSError):
            return

    async def hear(self, uuid: str) -> str:
        while uuid not in self.codes:  # sent before the initiate was answered: rarely waits
            await asyncio.sleep(0.001)
        return self.codes.pop(uuid)


def parse_rate(text: str) -> tuple[int, float]:
    count, _, period = text.partition("/")
    return int(count), float(period or 1)


async def warm_up(url: str, phone: Phone, limiter: RateLimiter) -> None:
    """One verification before the clock starts, so that neither side's first-request costs
    (imports, route compilation) land inside the measured run. Through the run's limiter: the
    sandbox's window is account-wide (subaccounts included), so the limiter must see these too."""
    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, url, limiter=limiter) as client:
        started = await client.initiate("+14155550100")
        await client.complete(
            started.verification_uuid, await phone.hear(started.verification_uuid)
        )
        await client.get("+14155550100")


async def drive(url: str, phone: Phone, args: argparse.Namespace) -> tuple[list[str], float]:
    limit, period = args.rate
    limiter = RateLimiter(limit, period, margin_s=args.margin_ms / 1000, burst=args.burst)
    # valid US numbers: exchange 200-999, line 0000-9999
    numbers = (f"+1415{200 + n // 10_000:03d}{n % 10_000:04d}" for n in itertools.count())
    failures: list[str] = []
    await warm_up(url, phone, limiter)
    started_at = time.monotonic()
    stop_at = started_at + args.periods * period

    async with PlivoClient(DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, url, limiter=limiter) as client:

        async def worker() -> None:
            while time.monotonic() < stop_at:
                number = next(numbers)
                try:
                    started = await client.initiate(number)
                    otp = await phone.hear(started.verification_uuid)
                    await client.complete(started.verification_uuid, otp)
                    await client.get(number)
                except PlivoError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(worker() for _ in range(args.workers)))
    return failures, started_at


def summarise(arrivals: list[float], limit: int, period: float, periods: int) -> dict[str, float]:
    arrivals = sorted(arrivals)
    first, duration = arrivals[0], periods * period

    def in_window(start: float) -> int:
        return bisect_left(arrivals, start + period) - bisect_left(arrivals, start)

    # Averaged over every window starting in the run (10 ms steps) and ending before it stops:
    # one fixed window would flatter or punish depending on how it meets the limiter's cycle.
    starts = [first + i * 0.01 for i in range(int((duration - period) / 0.01) + 1)]
    mean_window = sum(in_window(t) for t in starts) / len(starts)
    return {
        "requests": bisect_left(arrivals, first + duration),
        "mean_window": mean_window,
        "ratio": mean_window / limit,
        "busiest": max(in_window(t) for t in arrivals),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=parse_rate, default=(300, 5.0), help="N/seconds (300/5)")
    parser.add_argument("--latency-ms", type=int, default=250, help="sandbox latency per request")
    parser.add_argument("--periods", type=int, default=6, help="run length in rate periods")
    parser.add_argument("--workers", type=int, default=64, help="concurrent callers")
    parser.add_argument("--margin-ms", type=float, default=100.0, help="limiter safety margin")
    parser.add_argument("--burst", type=int, default=None, help="limiter burst (default N/20)")
    parser.add_argument("--short", action="store_true", help="3 periods (15 s at 300/5)")
    parser.add_argument("--in-process", action="store_true", help="sandbox in a thread here")
    args = parser.parse_args()
    if args.short:
        args.periods = 3
    limit, period = args.rate

    ours, theirs = multiprocessing.Pipe()
    phone_in, phone_out = multiprocessing.Pipe(duplex=False)
    server_args = (theirs, phone_out, limit, period, args.latency_ms)
    if args.in_process:
        runner: Any = threading.Thread(target=serve, args=server_args, daemon=True)
    else:
        runner = multiprocessing.get_context("spawn").Process(target=serve, args=server_args)
    runner.start()
    url = ours.recv()
    failures, started_at = asyncio.run(drive(url, Phone(phone_in), args))
    ours.send("stop")
    arrivals, refusals = ours.recv()
    runner.join(timeout=10)
    result = summarise([t for t in arrivals if t >= started_at], limit, period, args.periods)

    where = "a thread of this process" if args.in_process else "a child process"
    print(f"configured limit     {limit}/{period:g}s = {limit / period:.1f} req/s")
    print(f"sandbox              {where}, {args.latency_ms} ms latency, {args.workers} workers")
    print(f"limiter              margin {args.margin_ms:g} ms, burst {args.burst or 'N/20'}")
    print(f"run                  {args.periods} periods, {result['requests']} requests")
    print(
        f"achieved             {result['mean_window'] / period:.2f} req/s "
        f"(mean {result['mean_window']:.1f} arrivals per {period:g}s window)"
    )
    print(f"ratio to limit       {result['ratio']:.3f}   (goal >= 0.95)")
    at = ", ".join(f"{t - started_at:.2f}s" for t in refusals[:8])
    print(f"429s                 {len(refusals)}   (goal 0){'  at ' + at if at else ''}")
    print(f"busiest window       {result['busiest']} arrivals (limit {limit})")
    print(f"client errors        {len(failures)}")
    for line in sorted(set(failures))[:5]:
        print(f"  {line}")


if __name__ == "__main__":
    main()
