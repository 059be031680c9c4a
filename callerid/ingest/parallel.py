"""Normalise many cells in batches, optionally with helper processes.

phonenumbers is pure Python, so threads would not help; processes do, once a file is big enough
to repay their start-up (a spawned interpreter imports phonenumbers and loads its metadata
again). The calling process works too: helpers take batches from the front, it takes them from
the back, so nobody waits while batches remain.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from callerid.ingest.normalise import Outcome, normalise_batch

BATCH = 5000  # big enough for regex cache locality and cheap pickling, small enough to balance
# Below this many rows the helpers' start-up costs more than they save (measured on 2 cores).
MIN_ROWS_FOR_HELPERS = 20_000


def normalise_all(items: Sequence[tuple[str, str]], *, workers: int = 1) -> list[Outcome]:
    """One outcome per item, in order. Items are grouped by likely country first: phonenumbers
    recompiles metadata regexes once `re`'s 512-entry cache overflows, and a batch of mixed
    countries overflows it (measured: 1.8x slower than grouped)."""
    order = sorted(range(len(items)), key=lambda i: _country_key(*items[i]))
    grouped = [items[i] for i in order]
    batches: list[Sequence[tuple[str, str]]] = [
        grouped[i : i + BATCH] for i in range(0, len(grouped), BATCH)
    ]
    if workers <= 1 or len(items) < MIN_ROWS_FOR_HELPERS:
        results = dict(enumerate(normalise_batch(batch) for batch in batches))
    else:
        results = _run_shared(batches, helpers=workers - 1)
    outcomes: list[Outcome | None] = [None] * len(items)
    flat = (outcome for k in range(len(batches)) for outcome in results[k])
    for i, outcome in zip(order, flat, strict=True):
        outcomes[i] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _country_key(raw: str, region: str) -> str:
    """`+44...` by its leading digits, anything else by the region it will be read in."""
    text = raw.strip()
    return text[:4] if text.startswith("+") else region


def _run_shared(
    batches: list[Sequence[tuple[str, str]]], *, helpers: int
) -> dict[int, list[Outcome]]:
    # spawn, not fork: the caller may be a Prefect worker with threads, and fork copies locks.
    context = multiprocessing.get_context("spawn")
    results: dict[int, list[Outcome]] = {}
    pending = deque(enumerate(batches))
    running: dict[Future[list[Outcome]], int] = {}
    with ProcessPoolExecutor(max_workers=helpers, mp_context=context) as pool:
        while pending or running:
            while pending and len(running) < 2 * helpers:
                k, batch = pending.popleft()
                running[pool.submit(normalise_batch, batch)] = k
            if pending:
                k, batch = pending.pop()
                results[k] = normalise_batch(batch)
            else:
                wait(running, return_when=FIRST_COMPLETED)
            for future in [f for f in running if f.done()]:
                results[running.pop(future)] = future.result()
    return results
