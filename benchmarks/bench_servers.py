"""Benchmark: CPU seconds of the two servers per 1,000 numbers, without the run process.

The two servers of `bench_scale.py` as a user runs them (`callerid sandbox serve`, unthrottled,
instant replies, texting each OTP as a signed webhook to `callerid inbox serve`, which files it in
a SQLite ledger), driven by a light client in this process that does what the run does on the
wire: initiate every number (`--concurrency` at a time), wait until the receiver has stored every
code, read the codes from the ledger, complete every number. Printed: CPU seconds per 1,000
numbers of the sandbox (2 API requests + 1 webhook sent per number) and of the receiver (1 webhook
per number), each from /proc (all threads), plus the client's own wall time.

    uv run --frozen python benchmarks/bench_servers.py [--count 2000] [--concurrency 32]
    uv run --frozen python benchmarks/bench_servers.py --profile /tmp/prof   # cProfile both
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import cpu_seconds, free_port, numbers, wait_http

RUNNER = str(Path(__file__).with_name("scale_runner.py"))
API = f"/v1/Account/{DEFAULT_AUTH_ID}/VerifiedCallerId/"
CODE = re.compile(r"\d{4,8}")


async def _initiate(url: str, chosen: list[str], concurrency: int) -> dict[str, str]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    auth = (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
    uuids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits, timeout=60) as client:
        todo = iter(chosen)

        async def worker() -> None:
            for e164 in todo:
                response = await client.post(API, json={"phone_number": e164, "alias": e164})
                assert response.status_code == 201, response.text
                uuids[e164] = response.json()["verification_uuid"]

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return uuids


async def _complete(url: str, codes: dict[str, tuple[str, str]], concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    auth = (DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=url, auth=auth, limits=limits, timeout=60) as client:
        todo = iter(codes.values())

        async def worker() -> None:
            for uuid, code in todo:
                response = await client.post(f"{API}Verification/{uuid}/", json={"otp": code})
                assert response.status_code == 200, response.text

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def _stored(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db, timeout=30) as connection:
        return list(connection.execute("SELECT from_number, text FROM inbox_messages"))


def measure(count: int, concurrency: int, profile: Path | None) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    db = folder / "ledger.sqlite3"
    sandbox_port, inbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "PLIVO_AUTH_ID": DEFAULT_AUTH_ID,
        "PLIVO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "PLIVO_API_URL": sandbox_url,
        "CALLERID_DATABASE_URL": f"sqlite:///{db}",
        "CALLERID_OUTPUT_DIR": str(folder / "out"),
    }

    def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
        if profile is None:
            command = [sys.executable, "-c", "from callerid.cli import main; main()", *args]
            extra: dict[str, str] = {}
        else:
            command = [sys.executable, RUNNER, *args]
            extra = {
                "BENCH_PROFILE": str(profile / f"{name}.prof"),
                "BENCH_RSS_FILE": str(folder / f"{name}.rss"),
            }
        log = (folder / f"{name}.log").open("wb")
        return subprocess.Popen(command, env={**env, **extra}, stdout=log, stderr=log)

    inbox = start("receiver", ["inbox", "serve", "--port", str(inbox_port)])
    sandbox = start(
        "sandbox",
        [
            *("sandbox", "serve", "--port", str(sandbox_port), "--reply-delay-s", "0"),
            *("--rate", "10000000/5", "--inbox-url", f"http://127.0.0.1:{inbox_port}/plivo/sms"),
        ],
    )
    try:
        wait_http(f"{sandbox_url}/_sandbox/stats")
        wait_http(f"http://127.0.0.1:{inbox_port}/healthz")
        # warm-up: imports, connections, the ledger's first insert
        warm = numbers(count + 20)[count:]
        asyncio.run(_initiate(sandbox_url, warm, 4))
        while len(_stored(db)) < len(warm):
            time.sleep(0.05)
        chosen = numbers(count)
        before = [cpu_seconds(p.pid) for p in (sandbox, inbox)]
        started = time.monotonic()
        uuids = asyncio.run(_initiate(sandbox_url, chosen, concurrency))
        initiated = time.monotonic()
        while True:
            rows = _stored(db)
            if len(rows) >= count + len(warm):
                break
            time.sleep(0.02)
        delivered = time.monotonic()
        middle = [cpu_seconds(p.pid) for p in (sandbox, inbox)]
        codes: dict[str, tuple[str, str]] = {}
        for sender, text in rows:
            e164 = f"+{sender}"
            found = CODE.search(text)
            if e164 in uuids and found:
                codes[e164] = (uuids[e164], found.group())
        assert len(codes) == count, len(codes)
        asyncio.run(_complete(sandbox_url, codes, concurrency))
        ended = time.monotonic()
        after = [cpu_seconds(p.pid) for p in (sandbox, inbox)]
    except BaseException:
        for name in ("sandbox", "receiver"):
            tail = (folder / f"{name}.log").read_text(errors="replace")[-3000:]
            print(f"--- {name} log:\n{tail}", file=sys.stderr)
        raise
    finally:
        for process in (sandbox, inbox):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in (sandbox, inbox):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    per = count / 1000
    return {
        "sandbox": (after[0] - before[0]) / per,
        "receiver": (after[1] - before[1]) / per,
        # the sandbox's CPU per complete request alone (no webhook in that phase), in ms
        "complete_ms": (after[0] - middle[0]) / count * 1000,
        "initiate_s": initiated - started,
        "deliver_wait_s": delivered - initiated,
        "complete_s": ended - delivered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="cProfile both servers into DIR/<name>.prof")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"load before: {os.getloadavg()[0]:.1f}", flush=True)
    for _ in range(args.repeat):
        row = measure(args.count, args.concurrency, args.profile)
        print(
            f"{args.count} numbers, {args.concurrency} concurrent: CPU s per 1,000 numbers "
            f"sandbox {row['sandbox']:.2f} (of which completes {row['complete_ms']:.2f}), "
            f"receiver {row['receiver']:.2f}; wall: initiate "
            f"{row['initiate_s']:.1f} s, last webhook +{row['deliver_wait_s']:.1f} s, "
            f"complete {row['complete_s']:.1f} s; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
