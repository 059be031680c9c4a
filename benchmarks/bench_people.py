"""Benchmark: owners' mail. 1,000 numbers over 1,000 owners, mail to an SMTP server in-process.

Prints:

* mail throughput: 1,000 wave messages (one per owner) sent by the mailer over one connection
  to the test SMTP server (aiosmtpd), in messages per second;
* the run with owners against the same run without: wall time ratio (goal: close to 1.00, i.e.
  mail never delays initiations or completions), and how many owners were emailed in how many
  waves. The runs are `bulk_verify` flows against the sandbox (300 requests / 5 s); the sandbox's
  people text each code back after `--reply-delay` seconds (long enough that every number is
  still waiting when its wave goes out), and `ask_person_after_s=0` asks every owner at once.

    uv run --frozen python benchmarks/bench_people.py [--numbers 1000] [--reply-delay 20]

Measured on the 2-core box (2026-12-01, other helpers' tests running): 94 messages/s; run with
owners 65.2 s vs 63.4 s without (ratio 1.028), 1,000 owners emailed in 2 waves (800 + 200).
Again 2026-12-06 (load 10-12, reminders and the page's rate limit now in the ledger): 174
messages/s; 45.9 s with owners and 45.9 s without (ratio 1.000), 1,000 owners in 1 wave.
"""

from __future__ import annotations

import os
import tempfile

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
import socket
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from callerid.clock import OffsetClock
from callerid.inbox import WebhookServer
from callerid.ledger import open_ledger
from callerid.people import Mail, SmtpMailer, parse_smtp_url
from callerid.sandbox import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN, SandboxServer

RATE, PERIOD = 300, 5.0


class Counting:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        return "250 Message accepted"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def numbers(count: int) -> list[str]:
    import phonenumbers

    found: list[str] = []
    for prefix in ("+1415555", "+1312555", "+1202555", "+1646555", "+1617555"):
        for i in range(10_000):
            candidate = f"{prefix}{i:04d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
                found.append(candidate)
                if len(found) == count:
                    return found
    raise SystemExit("not enough valid numbers")


def write_input(folder: Path, count: int, owners: bool) -> Path:
    path = folder / "numbers.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", "alias", "owner"])
        for i, n in enumerate(numbers(count)):
            writer.writerow([n, f"line {i}", f"owner{i}@example.com" if owners else ""])
    return path


def mail_throughput(smtp_url: str, count: int) -> float:
    mails = [
        Mail(f"owner{i}@example.com", "verification codes", "Plivo has sent a code...\n" * 8)
        for i in range(count)
    ]
    started = time.perf_counter()
    report = SmtpMailer(parse_smtp_url(smtp_url)).send(mails)
    elapsed = time.perf_counter() - started
    assert len(report.sent) == count and report.connections == 1, report
    return count / elapsed


def measure(label: str, count: int, owners: bool, reply_delay: float) -> dict[str, Any]:
    from flows.bulk_verify import bulk_verify

    folder = Path(tempfile.mkdtemp(prefix=f"bench-people-{label}-"))
    url = f"sqlite:///{folder / 'ledger.sqlite3'}"
    ledger = open_ledger(url)
    csv_path = write_input(folder, count, owners)
    tokens = {DEFAULT_AUTH_ID: DEFAULT_AUTH_TOKEN}
    clock = OffsetClock()
    inbox = WebhookServer(ledger, DEFAULT_AUTH_ID, tokens, DEFAULT_AUTH_TOKEN, clock=clock)
    with inbox, SandboxServer(inbox_url=inbox.url, reply_delay_s=reply_delay, clock=clock) as sb:
        os.environ.update(
            PLIVO_AUTH_ID=DEFAULT_AUTH_ID,
            PLIVO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN,
            PLIVO_API_URL=sb.url,
            CALLERID_DATABASE_URL=url,
            CALLERID_OUTPUT_DIR=str(folder / "out"),
            CALLERID_RATE_LIMIT_REQUESTS=str(RATE),
            CALLERID_RATE_LIMIT_PERIOD_S=str(PERIOD),
        )
        started = time.perf_counter()
        result = asyncio.run(
            bulk_verify(
                str(csv_path),
                max_in_flight=count,
                batch_size=100,
                poll_interval_s=0.2,
                run_id=f"bench-people-{label}",
                follow_sandbox_clock=True,
                shared_rate_limit=False,
                ask_person_after_s=0,
                public_url="https://codes.example.com",
            )
        )
        wall = time.perf_counter() - started
    ledger.close()
    people = result.get("people") or {}
    return {
        "label": label,
        "wall_s": wall,
        "verified": int(result["counts"].get("verified", 0)),
        "waves": people.get("waves", 0),
        "emailed": people.get("emails_sent", 0),
        "failed": people.get("emails_failed", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1000)
    parser.add_argument("--reply-delay", type=float, default=20.0)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    handler = Counting()
    port = _port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    smtp_url = f"smtp://127.0.0.1:{port}?from=callerid@example.com"
    os.environ["CALLERID_SMTP_URL"] = smtp_url
    try:
        rate = mail_throughput(smtp_url, args.numbers)
        print(f"mail: {args.numbers} messages over one connection, {rate:.0f} messages/s")
        with prefect_test_harness(server_startup_timeout=240):
            rows = [
                measure("plain", args.numbers, False, args.reply_delay),
                measure("owners", args.numbers, True, args.reply_delay),
            ]
    finally:
        controller.stop()
    for r in rows:
        print(
            f"{r['label']:>6}: {r['verified']} verified, wall {r['wall_s']:.1f} s, "
            f"waves {r['waves']}, owners emailed {r['emailed']}, not sent {r['failed']}"
        )
    print(f"wall time with owners / without: {rows[1]['wall_s'] / rows[0]['wall_s']:.3f}")


if __name__ == "__main__":
    main()
