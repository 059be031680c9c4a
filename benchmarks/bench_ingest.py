"""Benchmark: `ingest_csv` on a generated 100,000-row CSV of mixed countries and formats.

Throughput is printed as a ratio to a bare phonenumbers loop (parse + is_valid_number + E.164
format) over the same cells and regions, measured in the same run, so the number means the same
on any machine: 1.0 = as fast as phonenumbers alone. Goals (issue 3): >= 0.8 in one process,
>= 1.5 with two. Peak memory: tracemalloc over a separate run (it slows the code it watches).

    uv run --frozen python benchmarks/bench_ingest.py [--rows 100000] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
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


def timed_ingest(path: Path, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    result = ingest_csv(path, workers=workers)
    return time.perf_counter() - start, len(result.accepted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.csv"
        write_csv(path, args.rows)
        with path.open(newline="", encoding="utf-8") as handle:
            cells = [(row[0], row[2] or "US") for row in list(csv.reader(handle))[1:]]
        baseline(cells[:5000])  # load phonenumbers' metadata once, for both sides
        base, single, multi = [], [], []
        for _ in range(args.repeat):
            base.append(baseline(cells))
            single.append(timed_ingest(path, 1)[0])
            if args.workers > 1:
                multi.append(timed_ingest(path, args.workers)[0])
        accepted = timed_ingest(path, 1)[1]
        tracemalloc.start()
        ingest_csv(path, workers=1)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    b = statistics.median(base)
    print(f"rows: {args.rows} ({accepted} accepted), file {path.name}, repeats {args.repeat}")
    print(f"baseline (parse+valid+E164 loop): {b:.2f} s = {args.rows / b:,.0f} rows/s")
    s = min(single)
    print(f"ingest_csv, 1 process:  {s:.2f} s = {args.rows / s:,.0f} rows/s, ratio {b / s:.2f}")
    if multi:
        m = min(multi)
        print(
            f"ingest_csv, {args.workers} processes: {m:.2f} s = {args.rows / m:,.0f} rows/s, "
            f"ratio {b / m:.2f}"
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak traced memory (1 process): {peak / 2**20:.1f} MiB; max RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
