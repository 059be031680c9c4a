"""Benchmark: the inbox's costs as ratios of a baseline measured in the same run.

1. Webhook: signed inbound-SMS POSTs through `WebhookServer` (V3 + Ma-V3 checked, one insert-once
   per message into a file SQLite ledger) vs the same requests to a bare Starlette endpoint that
   only parses the form, both on uvicorn in a thread, from `--concurrency` concurrent senders.
2. Matcher: one `match_new_messages` pass over `--count` new messages for as many live
   verifications vs the pass's own baseline, loading the same rows.

    uv run python benchmarks/bench_inbox.py                  # 1000 messages, 8 senders
    uv run python benchmarks/bench_inbox.py --count 300
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from callerid.inbox import WebhookServer, match_new_messages, session_scope, store
from callerid.inbox.models import InboundMessage, MessageSource
from callerid.ledger import open_ledger
from callerid.ledger.models import Number, NumberStatus
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, ThreadedUvicorn
from callerid.sandbox.delivery import signed_headers

NUMBER_BASE = 14155550000


def sms(i: int) -> dict[str, str]:
    return {
        "From": str(NUMBER_BASE + i),
        "To": "15005550100",
        "Text": f"Your verification code is {1000 + i % 9000}",
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
    }


async def post_all(url: str, count: int, concurrency: int) -> float:
    bodies = [sms(i) for i in range(count)]
    requests = [
        (b, signed_headers(url, b, f"{i:020d}", DEFAULT_AUTH_TOKEN, DEFAULT_AUTH_TOKEN))
        for i, b in enumerate(bodies)
    ]
    queue: asyncio.Queue[tuple[dict[str, str], dict[str, str]]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    async with httpx.AsyncClient(timeout=30) as client:

        async def sender() -> None:
            while not queue.empty():
                body, headers = queue.get_nowait()
                response = await client.post(url, data=body, headers=headers)
                assert response.status_code == 200, response.status_code

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - started


def bare_app() -> Starlette:
    async def receive(request: Request) -> Response:
        await request.form()
        return Response("<Response></Response>", media_type="application/xml")

    return Starlette(routes=[Route("/plivo/sms", receive, methods=["POST"])])


def bench_webhook(folder: Path, count: int, concurrency: int) -> None:
    with ThreadedUvicorn(bare_app()) as bare:
        baseline = asyncio.run(post_all(f"{bare.url}/plivo/sms", count, concurrency))
    ledger = open_ledger(f"sqlite:///{folder / 'webhook.sqlite3'}")
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    with WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN) as hook:
        measured = asyncio.run(post_all(hook.url, count, concurrency))
    with ledger.unit_of_work() as uow:
        stored = len(store.list_messages(uow.session, limit=count + 1))
    ledger.close()
    assert stored == count
    print(
        f"webhook: {count / measured:8.0f} msg/s  bare endpoint: {count / baseline:8.0f} req/s"
        f"  ratio {measured / baseline:5.2f}x the bare time"
    )


def bench_matcher(folder: Path, count: int) -> None:
    ledger = open_ledger(f"sqlite:///{folder / 'matcher.sqlite3'}")
    now = datetime.now(UTC)
    with ledger.unit_of_work() as uow:
        for i in range(count):
            uow.session.add(
                Number(
                    account=DEFAULT_AUTH_ID,
                    e164=f"+{NUMBER_BASE + i}",
                    channel="sms",
                    status=NumberStatus.INITIATED.value,
                    verification_uuid=str(uuid.uuid4()),
                    initiated_at=now - timedelta(minutes=1),
                    expires_at=now + timedelta(minutes=14),
                    created_at=now,
                    updated_at=now,
                )
            )
        for i in range(count):
            store.insert_message(
                uow.session,
                InboundMessage(
                    MessageSource.WEBHOOK,
                    f"m{i}",
                    str(NUMBER_BASE + i),
                    "15005550100",
                    f"Your verification code is {1000 + i % 9000}",
                    now,
                    DEFAULT_AUTH_ID,
                ),
            )
        uow.commit()
    scope = session_scope(ledger)
    started = time.perf_counter()
    with scope() as session:
        loaded = len(store.new_rows(session, DEFAULT_AUTH_ID))
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    with ledger.unit_of_work() as uow:
        matches = match_new_messages(uow, DEFAULT_AUTH_ID, now)
    measured = time.perf_counter() - started
    ledger.close()
    assert loaded == count and len(matches) == count
    print(
        f"matcher: {count / measured:8.0f} msg/s  loading the rows: {count / baseline:8.0f}"
        f" rows/s  ratio {measured / baseline:5.2f}x the load time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as folder:
        bench_webhook(Path(folder), args.count, args.concurrency)
        bench_matcher(Path(folder), args.count)


if __name__ == "__main__":
    main()
