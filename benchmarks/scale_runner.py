"""`callerid ...` with measurements, for bench_scale.py: peak RSS at exit (BENCH_RSS_FILE), and on
request a cProfile of every thread (BENCH_PROFILE), wall-clock stack samples of every thread
every 5 ms (BENCH_SAMPLE), a poor man's py-spy, or CPU-time samples (BENCH_CPU_SAMPLE): every
10 ms each thread's CPU time since the last sample is charged to its current stack, only while
the file BENCH_CPU_GATE exists (bench_scale creates it for the waiting phase), or what is
allocated at the peak (BENCH_TRACEMALLOC: a tracemalloc snapshot whenever the traced total grew
by 5 %; the largest one's top allocations at exit, by the stack that made them)."""

from __future__ import annotations

import atexit
import collections
import contextlib
import cProfile
import os
import pstats
import resource
import sys
import threading
import time
import traceback
from typing import Any


def _rss_timeline(path: str) -> None:
    """Every second: seconds since start, RSS (MiB) and numbers final (from progress.json); when
    RSS reaches a new high (+5 %), the live objects' counts by type, to say what grew."""
    import gc
    import glob
    import json

    page = os.sysconf("SC_PAGE_SIZE")
    progress = os.path.join(os.environ.get("CALLERID_OUTPUT_DIR", "out"), "runs/*/progress.json")
    started = time.monotonic()

    def rss_mib() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page / 2**20

    def final() -> str:
        for found in glob.glob(progress):
            try:
                with open(found) as fh:
                    data = json.load(fh)
                return f"{data.get('final')}/{data.get('total')} {data.get('phase')}"
            except (OSError, ValueError):
                pass
        return "-"

    def watcher() -> None:
        high = 0.0
        with open(path, "w") as out:
            while True:
                time.sleep(1.0)
                rss = rss_mib()
                out.write(f"{time.monotonic() - started:7.1f} s {rss:7.1f} MiB {final()}\n")
                if rss > high * 1.05 and time.monotonic() - started > 5:
                    high = rss
                    kinds = collections.Counter(type(o).__name__ for o in gc.get_objects())
                    top = ", ".join(f"{k} {n}" for k, n in kinds.most_common(25))
                    out.write(f"  objects at {rss:.0f} MiB: {top}\n")
                out.flush()

    threading.Thread(target=watcher, daemon=True, name="bench-rss-timeline").start()


def _peak() -> None:
    with open(os.environ["BENCH_RSS_FILE"], "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def _profile_threads(path: str) -> None:
    profilers = [cProfile.Profile(time.thread_time)]
    run = threading.Thread.run

    def profiled(self: threading.Thread) -> None:
        profiler = cProfile.Profile(time.thread_time)
        profilers.append(profiler)
        profiler.enable()
        try:
            run(self)
        finally:
            profiler.disable()

    threading.Thread.run = profiled  # type: ignore[method-assign]

    def dump() -> None:
        profilers[0].disable()
        stats = pstats.Stats(profilers[0])
        for profiler in profilers[1:]:
            with contextlib.suppress(TypeError, ValueError):
                stats.add(profiler)
        stats.dump_stats(path)

    atexit.register(dump)
    profilers[0].enable()


def _sample_threads(path: str) -> None:
    seen: collections.Counter[str] = collections.Counter()

    def describe(frame: Any) -> str:
        stack = traceback.extract_stack(frame)[-14:]
        return " <- ".join(
            f"{f.name}@{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(stack)
        )

    def sampler() -> None:
        me = threading.get_ident()
        while True:
            time.sleep(0.005)
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    seen[f"[{names.get(ident, '?')}] {describe(frame)}"] += 1

    threading.Thread(target=sampler, daemon=True).start()

    def dump() -> None:
        with open(path, "w") as fh:
            for stack, n in seen.most_common(500):
                fh.write(f"{n}\t{stack}\n")

    atexit.register(dump)


def _sample_cpu(path: str, gate: str) -> None:
    charged: collections.Counter[str] = collections.Counter()
    totals = {"charged": 0.0, "wall": 0.0}

    def describe(frame: Any) -> str:
        stack = traceback.extract_stack(frame)[-16:]
        return " <- ".join(
            f"{f.name}@{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(stack)
        )

    def sampler() -> None:
        me = threading.get_ident()
        last: dict[int, float] = {}
        was_open = False
        while True:
            time.sleep(0.01)
            is_open = os.path.exists(gate)
            started = time.monotonic()
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                try:
                    cpu = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except OSError:
                    continue
                used = cpu - last.get(ident, cpu)
                last[ident] = cpu
                if is_open and was_open and used > 0:
                    charged[f"[{names.get(ident, '?')}] {describe(frame)}"] += used
                    totals["charged"] += used
            if is_open and was_open:
                totals["wall"] += 0.01 + time.monotonic() - started
            was_open = is_open

    threading.Thread(target=sampler, daemon=True, name="bench-cpu-sampler").start()

    def dump() -> None:
        with open(path, "w") as fh:
            fh.write(f"# charged {totals['charged']:.3f} s CPU over ~{totals['wall']:.1f} s\n")
            for stack, seconds in charged.most_common(400):
                fh.write(f"{seconds * 1000:.1f}ms\t{stack}\n")

    atexit.register(dump)


def _trace_peak(path: str) -> None:
    import tracemalloc

    tracemalloc.start(12)
    kept: dict[str, Any] = {"size": 0, "snapshot": None, "at": 0.0}
    started = time.monotonic()

    def watcher() -> None:
        while True:
            time.sleep(0.5)
            current = tracemalloc.get_traced_memory()[0]
            if current > kept["size"] * 1.05:
                kept["snapshot"] = None  # let the old one go before taking the next
                kept.update(
                    size=current,
                    snapshot=tracemalloc.take_snapshot(),
                    at=time.monotonic() - started,
                )

    threading.Thread(target=watcher, daemon=True, name="bench-tracemalloc").start()

    def dump() -> None:
        snapshot = kept["snapshot"]
        if snapshot is None:
            return
        ours = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        with open(path, "w") as fh:
            fh.write(f"# peak traced {kept['size'] / 2**20:.1f} MiB at {kept['at']:.0f} s\n")
            for stat in ours.statistics("traceback")[:40]:
                fh.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:>8} blocks\n")
                for line in stat.traceback.format(limit=12, most_recent_first=True):
                    fh.write(f"    {line}\n")
            fh.write("\n# by line\n")
            for stat in ours.statistics("lineno")[:40]:
                fh.write(f"{stat.size / 2**20:8.2f} MiB {stat}\n")

    atexit.register(dump)


def main() -> None:
    atexit.register(_peak)
    if os.environ.get("BENCH_RSS_TIMELINE"):
        _rss_timeline(os.environ["BENCH_RSS_TIMELINE"])
    if os.environ.get("BENCH_PROFILE"):
        _profile_threads(os.environ["BENCH_PROFILE"])
    if os.environ.get("BENCH_SAMPLE"):
        _sample_threads(os.environ["BENCH_SAMPLE"])
    if os.environ.get("BENCH_TRACEMALLOC"):
        _trace_peak(os.environ["BENCH_TRACEMALLOC"])
    if os.environ.get("BENCH_CPU_SAMPLE"):
        _sample_cpu(os.environ["BENCH_CPU_SAMPLE"], os.environ["BENCH_CPU_GATE"])
    from callerid.cli import main as callerid

    sys.argv = ["callerid", *sys.argv[1:]]
    callerid()


if __name__ == "__main__":
    main()
