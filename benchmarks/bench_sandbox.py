"""Benchmark: is the sandbox ever the bottleneck? Its throughput as a ratio of bare uvicorn's.

Baseline: a Starlette route answering `{}` on the same threaded uvicorn, same client, same run.
Then the sandbox answering list (GET), initiate (POST, OTP + message recorded) and initiate with
the phone network delivering every OTP to a drop folder. Each row prints requests/s and the ratio
to the baseline; the client benchmark needs 60 requests/s (300 per 5 s).

    uv run python benchmarks/bench_sandbox.py [--requests 2000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from callerid.sandbox import (
    DEFAULT_AUTH_ID,
    DEFAULT_AUTH_TOKEN,
    SandboxBackend,
    SandboxServer,
    ThreadedUvicorn,
)

BASE = f"/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId/"


async def _drive(url: str, requests: int, concurrency: int, make: Callable[[int], tuple]) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    auth = (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits, timeout=30) as client:
        counter = iter(range(requests))

        async def worker() -> None:
            for i in counter:
                method, path, body = make(i)
                response = await client.request(method, path, json=body)
                assert response.status_code < 300, response.text

        for i in range(min(100, requests)):  # warm-up: connections, imports, caches
            method, path, body = make(requests + i)
            await client.request(method, path, json=body)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


def _number(i: int) -> str:
    return f"+1415{5550000 + i:07d}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    def run(url: str, make: Callable[[int], tuple]) -> float:
        return asyncio.run(_drive(url, args.requests, args.concurrency, make))

    def baseline() -> float:
        async def empty(request: Request) -> Response:
            return JSONResponse({})

        bare = Starlette(routes=[Route(BASE, empty, methods=["GET", "POST"])])
        with ThreadedUvicorn(bare) as server:
            return run(server.url, lambda i: ("GET", BASE, None))

    def initiate(i: int) -> tuple:
        return ("POST", BASE, {"phone_number": _number(i)})

    first = baseline()
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as drop:
        scenarios: list[tuple[str, dict[str, object], Callable[[int], tuple]]] = [
            ("sandbox list", {}, lambda i: ("GET", BASE, None)),
            ("sandbox initiate", {}, initiate),
            (
                "sandbox initiate + drop-folder SMS",
                {"drop_dir": drop, "reply_delay_s": 0},
                initiate,
            ),
        ]
        for name, options, make in scenarios:
            backend = SandboxBackend(rate=(10**9, 1.0), seed=1)
            with SandboxServer(backend, **options) as server:  # type: ignore[arg-type]
                rows.append((name, run(server.url, make)))
    reference = (first + baseline()) / 2  # measured before and after: the machine drifts
    print(f"{args.requests} requests, {args.concurrency} concurrent")
    print(f"  {'bare uvicorn (baseline, mean of 2)':38s} {reference:8.0f} req/s   ratio  1.00")
    for name, rate in rows:
        print(f"  {name:38s} {rate:8.0f} req/s   ratio {rate / reference:5.2f}")


if __name__ == "__main__":
    main()
