"""Benchmark: `callerid --help` wall time against `python -c pass`, measured in the same run.

The goal (issue 11) is `callerid --help` in 0.5 s or less on a quiet machine; absolute times move
with the machine and its load, so the ratio to a bare interpreter start in the same run is
printed too. Each command runs `--repeat` times, alternating, and the median counts (a busy
moment hits both), with the child's CPU time beside it (steadier on a shared box). Also
shown: the same for `callerid run --help` (its options come from the same lazily importing
modules) and, with `--with-prefect`, `python -c "import prefect"` for scale
(what every `callerid --help` used to pay).

    uv run --frozen python benchmarks/bench_cli.py [--repeat 7] [--with-prefect]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CALLERID = str(Path(sys.executable).with_name("callerid"))
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "callerid --help": [CALLERID, "--help"],
    "callerid run --help": [CALLERID, "run", "--help"],
}
PREFECT = {"python -c 'import prefect'": [sys.executable, "-c", "import prefect"]}


def wall_s(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system of the child) is steadier than wall
    time when other work shares the machine."""
    env = {**os.environ, "COLUMNS": "100", "DO_NOT_TRACK": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--with-prefect", action="store_true")
    args = parser.parse_args()
    commands = {**COMMANDS, **(PREFECT if args.with_prefect else {})}
    for command in commands.values():  # warm the page cache and .pyc files
        wall_s(command)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            wall, cpu = wall_s(command)
            times[name].append(wall)
            cpus[name].append(cpu)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'CPU s':>7} {'x python -c pass':>17}")
    for name, samples in times.items():
        median = statistics.median(samples)
        cpu = statistics.median(cpus[name])
        print(f"{name:<30} {median:9.3f} {min(samples):7.3f} {cpu:7.3f} {median / base:17.1f}")
    help_s = statistics.median(times["callerid --help"])
    verdict = "ok" if help_s <= 0.5 else "over the 0.5 s goal (is the machine busy?)"
    print(f"callerid --help: {help_s:.3f} s median: {verdict}")


if __name__ == "__main__":
    main()
