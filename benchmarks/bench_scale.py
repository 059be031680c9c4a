"""Benchmark: the whole `callerid run` at 1,000 / 10,000 (/ 100,000 with --big) numbers.

Three processes per size, as a user would run them: the sandbox (`callerid sandbox serve`,
unthrottled, instant replies), the webhook receiver (`callerid inbox serve`) filing its texts in
the ledger, and `callerid run FILE.csv` (Prefect's temporary server, the flow, the tasks). A few
numbers (`--silent`) never text their code, so the run ends with a phase where it only waits; the
benchmark then hands their codes in (as `callerid otp submit` would) and the run finishes.

Printed per size:
* requests/s: API requests of the loop (initiate + complete per number) / loop seconds, where the
  loop runs from the first initiation to the last verification before only the silent
  numbers are left (goal >= 600 at 10,000);
* loop seconds per 1,000 numbers, and its ratio to the 1,000-number figure (goal: flat, +-10 %);
* peak RSS of the run process (its own, not Prefect's server; goal <= 400 MB at 100,000);
* CPU share of the run process while it only waits (goal <= 2 % of a core at 100,000), from
  /proc over `--wait-s` seconds.

The machine's load is printed too: on a shared machine absolute numbers are noisy, ratios less so.

    uv run --frozen python benchmarks/bench_scale.py [--sizes 1000 10000] [--big] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import phonenumbers

from callerid.sandbox.state import DEFAULT_AUTH_ID, DEFAULT_AUTH_TOKEN

UNTHROTTLED = 10_000_000  # requests per 5 s: neither the sandbox nor the client limiter binds
AREA_CODES = ("415", "312", "202", "646", "617", "213", "305", "404", "512", "206", "303", "702")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUNNER = str(Path(__file__).with_name("scale_runner.py"))


def numbers(count: int) -> list[str]:
    found: list[str] = []
    for area in AREA_CODES:
        for i in range(10_000):
            candidate = f"+1{area}555{i:04d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
                found.append(candidate)
                if len(found) == count:
                    return found
    raise SystemExit(f"only {len(found)} valid numbers available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime, all threads


def wait_http(url: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def read_progress(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def measure(
    count: int, silent: int, wait_s: float, profile: Path | None, run_args: list[str]
) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-scale-{count}-"))
    url = f"sqlite:///{folder / 'ledger.sqlite3'}"
    chosen = numbers(count)
    csv_path = folder / "numbers.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone_number", "alias"])
        writer.writerows([n, f"line {i}"] for i, n in enumerate(chosen))
    sandbox_port, inbox_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "PLIVO_AUTH_ID": DEFAULT_AUTH_ID,
        "PLIVO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
        "PLIVO_API_URL": sandbox_url,
        "CALLERID_DATABASE_URL": url,
        "CALLERID_OUTPUT_DIR": str(folder / "out"),
        "CALLERID_RATE_LIMIT_REQUESTS": str(UNTHROTTLED),
        "CALLERID_RATE_LIMIT_PERIOD_S": "5",
        "PREFECT_HOME": str(folder / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "BENCH_RSS_FILE": str(folder / "rss"),
    }
    env.pop("PREFECT_API_URL", None)
    gate = folder / "waiting"
    if profile is not None and profile.suffix == ".rss":
        env["BENCH_RSS_TIMELINE"] = str(profile)
    elif profile is not None and profile.suffix == ".mem":
        env["BENCH_TRACEMALLOC"] = str(profile)
    elif profile is not None and profile.suffix == ".cpu":
        env["BENCH_CPU_SAMPLE"] = str(profile)
        env["BENCH_CPU_GATE"] = str(gate)
    elif profile is not None and profile.suffix == ".samples":
        env["BENCH_SAMPLE"] = str(profile)
    elif profile is not None:
        env["BENCH_PROFILE"] = str(profile)
    cli = [sys.executable, "-c", "import sys; from callerid.cli import main; main()"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    inbox = subprocess.Popen([*cli, "inbox", "serve", "--port", str(inbox_port)], **quiet)  # type: ignore[call-overload]
    sandbox = subprocess.Popen(  # type: ignore[call-overload]
        [
            *cli,
            *("sandbox", "serve", "--port", str(sandbox_port), "--reply-delay-s", "0"),
            *("--rate", f"{UNTHROTTLED}/5", "--inbox-url"),
            f"http://127.0.0.1:{inbox_port}/plivo/sms",
        ],
        **quiet,
    )
    run: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"{sandbox_url}/_sandbox/stats")
        wait_http(f"http://127.0.0.1:{inbox_port}/healthz")
        quiet_ones = chosen[-silent:] if silent else []
        for e164 in quiet_ones:
            httpx.post(
                f"{sandbox_url}/_sandbox/behaviour",
                json={"phone_number": e164, "behaviour": "never"},
                timeout=10,
            ).raise_for_status()
        started = time.monotonic()
        run = subprocess.Popen(
            [sys.executable, RUNNER, "run", str(csv_path), "--reply-delay", "0", *run_args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        progress_path = _progress_path(folder / "out")
        loop_start = loop_end = None
        while run.poll() is None:
            path = progress_path()
            progress = read_progress(path) if path else None
            if progress and loop_start is None and progress.get("phase") == "verifying":
                loop_start = time.monotonic()
                cpu_start = [cpu_seconds(p.pid) for p in (run, sandbox, inbox)]
            if progress and loop_end is None and progress.get("final", 0) >= count - silent:
                loop_end = time.monotonic()
                cpu_end = [cpu_seconds(p.pid) for p in (run, sandbox, inbox)]
                break
            time.sleep(0.05)
        if loop_end is None or loop_start is None:
            raise SystemExit(f"run ended early: {run.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        time.sleep(2.0)  # let the last batch's bookkeeping settle
        gate.touch()  # a CPU sampler (--cpu-sample) charges only this phase
        cpu_before, at = cpu_seconds(run.pid), time.monotonic()
        time.sleep(wait_s)
        waiting_cpu = (cpu_seconds(run.pid) - cpu_before) / (time.monotonic() - at)
        gate.unlink()
        _hand_in_codes(sandbox_url, url, quiet_ones)
        run.wait(timeout=600)
        wall = time.monotonic() - started
        peak_kib = int((folder / "rss").read_text())
    finally:
        for process in (run, sandbox, inbox):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    loop_s = _loop_seconds(folder / "ledger.sqlite3", count - silent)
    requests = 2 * (count - silent) + silent
    if not os.environ.get("BENCH_KEEP"):  # set it to look at the ledger afterwards
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")
    return {
        "numbers": count,
        "requests_per_s": requests / loop_s,
        "loop_s": loop_s,
        "loop_s_per_1000": loop_s / (count / 1000),
        "peak_rss_mb": peak_kib / 1024,
        "waiting_cpu": waiting_cpu,
        # CPU seconds per 1,000 numbers in the loop: run process, sandbox, receiver
        "loop_cpu_per_1000": [
            (b - a) / (count / 1000) for a, b in zip(cpu_start, cpu_end, strict=True)
        ],
        "wall_s": wall,
        "exit": run.returncode if run is not None else None,
    }


def _loop_seconds(ledger: Path, answered: int) -> float:
    """From the ledger's events: the first initiation to the `answered`-th verification (the
    last before the silent numbers' codes are handed in). Exact to the microsecond, where the
    progress file's rounds (every 0.5 s) made a 1,000-number loop of ~3 s uncertain by 15 %."""
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        (first,) = db.execute(
            "SELECT min(at) FROM events WHERE to_status = 'initiating'"
        ).fetchone()
        (last,) = db.execute(
            "SELECT at FROM events WHERE to_status = 'verified' ORDER BY at LIMIT 1 OFFSET ?",
            (answered - 1,),
        ).fetchone()
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def _progress_path(out: Path) -> Any:
    found: list[Path] = []

    def find() -> Path | None:
        if not found:
            hits = list(out.glob("runs/*/progress.json"))
            if hits:
                found.append(hits[0])
        return found[0] if found else None

    return find


def _hand_in_codes(sandbox_url: str, ledger_url: str, e164s: list[str]) -> None:
    """What a person would do for the silent phones: read the code, `callerid otp submit` it."""
    from callerid.inbox.manual import submit_code
    from callerid.ledger import open_ledger

    with open_ledger(ledger_url) as ledger, ledger.unit_of_work() as uow:
        for e164 in e164s:
            sent = httpx.get(
                f"{sandbox_url}/_sandbox/messages", params={"phone_number": e164}, timeout=30
            ).json()["messages"]
            submit_code(uow.session, DEFAULT_AUTH_ID, e164, sent[-1]["otp"])
        uow.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--big", action="store_true", help="add 100,000 numbers")
    parser.add_argument(
        "--run-arg",
        action="append",
        default=[],
        help="an option for `callerid run` (repeat it), e.g. --run-arg=--max-in-flight=600",
    )
    parser.add_argument("--silent", type=int, default=5, help="numbers that never text a code")
    parser.add_argument("--wait-s", type=float, default=20.0, help="seconds of waiting measured")
    parser.add_argument("--profile", type=Path, help="cProfile the run process into DIR/<n>.prof")
    parser.add_argument(
        "--sample", action="store_true", help="with --profile: stack samples instead of cProfile"
    )
    parser.add_argument(
        "--rss-timeline",
        action="store_true",
        help="with --profile: RSS every second, and object counts by type at each new high",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="with --profile: tracemalloc's top allocations at the peak (slow)",
    )
    parser.add_argument(
        "--cpu-sample",
        action="store_true",
        help="with --profile: CPU time per stack of every thread, waiting phase only",
    )
    args = parser.parse_args()
    sizes = [*args.sizes, *([100_000] if args.big else [])]
    print(f"load before: {os.getloadavg()}", flush=True)
    rows: list[dict[str, Any]] = []
    for count in sizes:
        profile = None
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            kind = (
                "rss"
                if args.rss_timeline
                else "mem"
                if args.memory
                else "cpu"
                if args.cpu_sample
                else "samples"
                if args.sample
                else "prof"
            )
            profile = args.profile / f"{count}.{kind}"
        row = measure(count, args.silent, args.wait_s, profile, args.run_arg)
        rows.append(row)
        base = rows[0]["loop_s_per_1000"]
        print(
            f"{count:>7} numbers: {row['requests_per_s']:.0f} requests/s, loop "
            f"{row['loop_s_per_1000']:.2f} s per 1,000 (ratio to {sizes[0]:,}: "
            f"{row['loop_s_per_1000'] / base:.2f}), peak RSS {row['peak_rss_mb']:.0f} MB, "
            f"CPU while waiting {100 * row['waiting_cpu']:.1f} % of a core, "
            f"wall {row['wall_s']:.0f} s, exit {row['exit']}, load {os.getloadavg()[0]:.1f}; "
            "loop CPU s per 1,000 (run, sandbox, receiver): "
            + ", ".join(f"{c:.2f}" for c in row["loop_cpu_per_1000"]),
            flush=True,
        )


if __name__ == "__main__":
    main()
