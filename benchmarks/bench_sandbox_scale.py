"""Benchmark: the sandbox's cost per operation does not grow with the account (issue 14).

The backend alone (no HTTP: the web layer is the same at any size) holding N caller IDs and N
completed verifications, N = 1,000 then 100,000: microseconds per initiate, per list page (first,
middle, last; unfiltered and by subaccount) and per GET, and each as a ratio to the 1,000 figure.

    uv run python benchmarks/bench_sandbox_scale.py [--big 100000] [--ops 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from callerid.clock import ManualClock
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_SUBACCOUNTS, SandboxBackend

SUB = next(iter(DEFAULT_SUBACCOUNTS))


def _numbers(count: int, start: int = 0) -> list[str]:
    return [
        f"+1{212 + (i // 10_000_000) % 700}{2000000 + i % 8_000_000:07d}"
        for i in range(start, start + count)
    ]


def _account(size: int) -> tuple[SandboxBackend, list[str]]:
    clock = ManualClock()
    backend = SandboxBackend(
        clock=clock, seed=1, rate=(10**9, 1.0), subaccounts=DEFAULT_SUBACCOUNTS
    )
    numbers = _numbers(size)
    for i, number in enumerate(numbers):
        started = backend.initiate(DEFAULT_AUTH_ID, number, subaccount=SUB if i % 10 == 0 else None)
        backend.complete(
            DEFAULT_AUTH_ID, started.verification_uuid, backend.otp_for(started.verification_uuid)
        )
        clock.advance(0.001)
    return backend, numbers


def _per_op_us(fn: Callable[[int], object], ops: int) -> float:
    began = time.perf_counter()
    for i in range(ops):
        fn(i)
    return (time.perf_counter() - began) / ops * 1e6


def measure(size: int, ops: int) -> dict[str, float]:
    backend, numbers = _account(size)
    fresh = _numbers(ops, start=size)
    pages = size // 20
    return {
        "initiate": _per_op_us(lambda i: backend.initiate(DEFAULT_AUTH_ID, fresh[i]), ops),
        "list page": _per_op_us(
            lambda i: backend.list(DEFAULT_AUTH_ID, limit=20, offset=20 * (i % pages)), ops
        ),
        "list page, one subaccount": _per_op_us(
            lambda i: backend.list(
                DEFAULT_AUTH_ID, subaccount=SUB, limit=20, offset=20 * (i % (pages // 10))
            ),
            ops,
        ),
        "get": _per_op_us(lambda i: backend.get(DEFAULT_AUTH_ID, numbers[i % size]), ops),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=2_000)
    args = parser.parse_args()
    small, big = measure(args.small, args.ops), measure(args.big, args.ops)
    print(f"{'operation':28} {args.small:>9,} {args.big:>9,}   ratio")
    for name in small:
        print(f"{name:28} {small[name]:8.1f}µ {big[name]:8.1f}µ  {big[name] / small[name]:5.2f}")


if __name__ == "__main__":
    main()
