"""Benchmark: how fast `callerid inbox serve` answers genuine signed posts under a starvation
attack (issue 13's goal: within 1 s), as a ratio of the same posts on the quiet server.

The server runs as `callerid inbox serve` in its own process with the usual 1,024 descriptors.
Quiet: `--posts` genuine posts, one at a time, each on a new connection (as Plivo sends them).
Attack: 2,000 idle sockets and 200 clients trickling their headers a byte every 0.1 s, opened at
once; the genuine posts start right after the flood (the first one queues behind it in the
kernel) and go on every 0.3 s past the 5 s header deadline (when the attackers are cut off).
The attack runs in a child process, so that its sockets do not take this process's CPU from the
posts being timed. Printed, not asserted: the figures depend on the machine's load (printed).

    uv run --frozen python benchmarks/bench_webhook_flood.py             # 3 rounds
    uv run --frozen python benchmarks/bench_webhook_flood.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from callerid.plivo.signature import sign_v3
from callerid.sandbox import DEFAULT_AUTH_TOKEN

IDLE, TRICKLE = 2_000, 200
SERVER_FDS = 1_024
GOAL_S = 1.0
CLI = (sys.executable, "-c", "from callerid.cli import main; main()")

ATTACKER = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
port, idle, trickle, seconds = map(int, sys.argv[1:5])
head = b"POST /plivo/sms HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-Slow: " + b"a" * 1000
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(trickle)]
print("flooded", flush=True)
end = time.monotonic() + seconds
sent = 0
while time.monotonic() < end:
    for s in slow:
        try:
            s.send(head[sent : sent + 1])
        except OSError:
            pass
    sent += 1
    time.sleep(0.1)
"""


def genuine_post(client: httpx.Client, url: str) -> float:
    params = {
        "From": "14155550123",
        "To": "15005550100",
        "Text": "Your verification code is 4821",
        "Type": "sms",
        "MessageUUID": str(uuid.uuid4()),
    }
    nonce = uuid.uuid4().hex
    headers = {
        "X-Plivo-Signature-V3": sign_v3("POST", url, params, nonce, DEFAULT_AUTH_TOKEN),
        "X-Plivo-Signature-V3-Nonce": nonce,
    }
    started = time.monotonic()
    response = client.post(url, data=params, headers=headers)
    took = time.monotonic() - started
    response.raise_for_status()
    return took


def serve(folder: Path) -> tuple[subprocess.Popen[str], str, int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["CALLERID_DATABASE_URL"] = f"sqlite:///{folder / 'ledger.sqlite3'}"
    env.pop("PLIVO_AUTH_ID", None)
    env.pop("PLIVO_AUTH_TOKEN", None)
    process = subprocess.Popen(
        [*CLI, "inbox", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, SERVER_FDS)),
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().rsplit(":", 1)[1])
    url = process.stdout.readline().rsplit(" ", 1)[1].strip()
    return process, url, port


def one_round(posts: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        server, url, port = serve(Path(folder))
        # a new connection per post, as Plivo's are; one client: no TLS set-up per post
        client = httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))
        try:
            genuine_post(client, url)  # creates the ledger
            quiet = []
            for _ in range(posts):
                quiet.append(genuine_post(client, url))
                time.sleep(0.05)
            attack = subprocess.Popen(
                [sys.executable, "-c", ATTACKER, str(port), str(IDLE), str(TRICKLE), "10"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert attack.stdout is not None
            attack.stdout.readline()  # flooded
            attacked = []
            for _ in range(posts):
                attacked.append(genuine_post(client, url))
                time.sleep(0.3)
            attack.wait(timeout=60)
            attack.stdout.close()
        finally:
            client.close()
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            if server.stdout is not None:
                server.stdout.close()
    return quiet, attacked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=25, help="genuine posts per phase")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    worst: list[float] = []
    for n in range(args.rounds):
        quiet, attacked = one_round(args.posts)
        worst.append(max(attacked))
        q, a = statistics.median(quiet), statistics.median(attacked)
        print(
            f"round {n + 1}: quiet median {q * 1000:.0f} ms, max {max(quiet) * 1000:.0f} ms; "
            f"under attack first {attacked[0] * 1000:.0f} ms, median {a * 1000:.0f} ms, "
            f"max {max(attacked) * 1000:.0f} ms (median ratio {a / q:.1f}); "
            f"load {os.getloadavg()[0]:.1f}"
        )
    print(
        f"worst answer under attack over {args.rounds} round(s): {max(worst) * 1000:.0f} ms "
        f"(goal {GOAL_S * 1000:.0f} ms: {'met' if max(worst) < GOAL_S else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
