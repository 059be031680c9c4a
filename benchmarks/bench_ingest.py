"""Benchmark: `ingest_csv` on a generated 100,000-row CSV of mixed countries and formats.

Throughput is printed as a ratio to a bare phonenumbers loop (parse + is_valid_number + E.164
format) over the same cells and regions, measured in the same run, so the number means the same
on any machine: 1.0 = as fast as phonenumbers alone. Goals (issue 3): >= 0.8 in one process,
>= 1.5 with two. Ratios are given on wall time and, for one process, on CPU time too (steadier
when other work shares the machine). Peak memory: peak RSS of a fresh process that ingests the file.

    uv run --frozen python benchmarks/bench_ingest.py [--rows 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import phonenumbers as pn
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from callerid.ingest import ingest_csv

# fmt: off
REGIONS = [
    "US", "CA", "GB", "DE", "FR", "IN", "AU", "BR", "JP", "MX", "ES", "IT", "NL", "SE", "NO",
    "PL", "ZA", "NG", "KE", "EG", "AR", "CL", "CO", "SG", "HK", "KR", "CN", "RU", "TR", "IE",
    "NZ", "PH", "ID", "AE", "SA", "IL", "CH", "AT", "BE", "PT",
]
# fmt: on


def _variant(rng: random.Random, region: str) -> tuple[str, str]:
    """One phone cell and its country cell, written the way people and spreadsheets write them."""
    kind = rng.choice((PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE))
    example = pn.example_number_for_type(region, kind) or pn.example_number(region)
    assert example is not None
    nsn = str(example.national_number)
    tail = min(4, len(nsn) - 2)
    number = pn.PhoneNumber(
        country_code=example.country_code,
        national_number=int(nsn[:-tail] + str(rng.randrange(10**tail)).zfill(tail)),
        italian_leading_zero=example.italian_leading_zero,
    )
    e164 = pn.format_number(number, PhoneNumberFormat.E164)
    roll = rng.random()
    if roll < 0.30:
        return e164, ""
    if roll < 0.50:
        return pn.format_number(number, PhoneNumberFormat.INTERNATIONAL), ""
    if roll < 0.75:
        return pn.format_number(number, PhoneNumberFormat.NATIONAL), region
    if roll < 0.82:
        return "00" + e164[1:], rng.choice(("", region))
    if roll < 0.90:
        return e164[1:] + ".0", ""  # a spreadsheet float with the + lost
    if roll < 0.94:
        return "\u00a0" + e164 + "\u200b", ""
    if roll < 0.96:
        return f"{e164} ext. {rng.randrange(10, 999)}", ""
    if roll < 0.98:
        return e164[: rng.randrange(3, 6)], region  # cut short
    return f"{int(e164[1:]):.5E}", ""  # damaged float


def write_csv(path: Path, rows: int, *, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["phone_number", "alias", "country", "channel", "notes"])
        for i in range(rows):
            if i > 100 and rng.random() < 0.01:
                cell, country = (
                    f"+{rng.choice(('1415555', '4420794'))}{rng.randrange(1000):04d}",
                    "",
                )
            else:
                cell, country = _variant(rng, rng.choice(REGIONS))
            channel = rng.choice(("sms", "sms", "SMS", "call", ""))
            writer.writerow([cell, f"Desk {i}", country, channel, f"row {i}"])


def baseline(cells: list[tuple[str, str]]) -> float:
    """Seconds for the bare loop a hand-written script would run."""
    start = time.perf_counter()
    for cell, region in cells:
        try:
            number = pn.parse(cell, region)
        except NumberParseException:
            continue
        if pn.is_valid_number(number):
            pn.format_number(number, PhoneNumberFormat.E164)
    return time.perf_counter() - start


def measure(run: Callable[[], object]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, CPU seconds of its helper processes)."""
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # ingest_csv does not wait for its helpers to exit; their CPU counts once they are reaped.
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.01)
    return wall, cpu, _children_cpu() - children


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_MEMORY_PROBE = """
import sys
sys.path.insert(0, sys.argv[2])
from callerid.ingest import ingest_csv

def high_water_kib():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

before = high_water_kib()
ingest_csv(sys.argv[1])
print(before, high_water_kib())
"""


def peak_memory_kib(path: Path) -> tuple[int, int]:
    """Peak RSS of a fresh process after its imports and after ingesting the file (KiB)."""
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(path), root],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        write_csv(path, args.rows)
        with path.open(newline="", encoding="utf-8") as handle:
            cells = [(row[0], row[2] or "US") for row in list(csv.reader(handle))[1:]]
        baseline(cells[:5000])  # load phonenumbers' metadata once, for both sides
        accepted = len(ingest_csv(path).accepted)
        runs: dict[str, list[tuple[float, float, float]]] = {"base": [], "one": [], "many": []}
        for _ in range(args.repeat):  # interleaved, so that load on the machine hits all alike
            runs["base"].append(measure(lambda: baseline(cells)))
            runs["one"].append(measure(lambda: ingest_csv(path, workers=1)))
            if args.workers > 1:
                runs["many"].append(measure(lambda: ingest_csv(path, workers=args.workers)))
        before, after = peak_memory_kib(path)
    _print_report(args, accepted, runs, before, after)


def _print_report(
    args: argparse.Namespace,
    accepted: int,
    runs: dict[str, list[tuple[float, float, float]]],
    before: int,
    after: int,
) -> None:
    best = {name: min(r) for name, r in runs.items() if r}  # the fastest run by wall time
    base_wall, base_cpu, _ = best["base"]
    one_wall, one_cpu, _ = best["one"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"rows {args.rows:,} ({accepted:,} accepted); best of {args.repeat}; load avg {load}")
    print(f"baseline parse+is_valid+E164 loop: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU")
    print(
        f"ingest_csv, 1 process: {one_wall:.2f} s wall ({args.rows / one_wall:,.0f} rows/s), "
        f"ratio {base_wall / one_wall:.2f} wall, {base_cpu / one_cpu:.2f} CPU"
    )
    if "many" in best:
        many_wall, main_cpu, helpers_cpu = best["many"]
        print(
            f"ingest_csv, {args.workers} processes: {many_wall:.2f} s wall "
            f"({args.rows / many_wall:,.0f} rows/s), ratio {base_wall / many_wall:.2f} wall; "
            f"CPU {main_cpu:.2f} s here + {helpers_cpu:.2f} s in helpers "
            f"(with a free core each: ratio ~{base_cpu / max(main_cpu, helpers_cpu):.2f})"
        )
    print(
        f"peak memory (peak RSS of a fresh process): {after / 1024:.0f} MiB, "
        f"of which ingest {(after - before) / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
