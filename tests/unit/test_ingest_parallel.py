"""Helper processes: outcomes travel as plain tuples and come back, in order, exactly as made."""

from __future__ import annotations

import multiprocessing
import sys
import time

import pytest

from callerid.ingest import parallel
from callerid.ingest.models import NumberType, RejectReason
from callerid.ingest.normalise import Failure, Normalised, normalise_batch
from callerid.ingest.parallel import _pack, _unpack, normalise_all

CELLS = [
    ("+1 415 555 2671", "US"),
    ("020 7946 0958", "GB"),
    ("", "US"),
    ("+1 415 555 2671 ext. 12", "US"),
    ("4.15556E+09", "US"),
    ("4420794609 58", "US"),
    ("+49 30 901820", "DE"),
    ("hello", "FR"),
    ("+800 1234 5678", "US"),
    ("12", "JP"),
]


def test_every_outcome_survives_packing() -> None:
    outcomes = [
        *(
            Normalised("+1", "n", "US", 1, kind, plus)
            for kind in NumberType
            for plus in (False, True)
        ),
        *(Failure(reason, f"because {reason}") for reason in RejectReason),
    ]
    back = _unpack([_pack(outcome) for outcome in outcomes])
    assert back == outcomes
    assert [type(o) for o in back] == [type(o) for o in outcomes]


def test_helpers_without_an_early_pool_give_the_same_outcomes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_HELPERS", 0)
    monkeypatch.setattr(parallel, "BATCH", 3)
    items = CELLS * 4
    expected = normalise_batch(items)
    assert {type(o) for o in expected} == {Normalised, Failure}
    assert normalise_all(items, workers=2) == expected
    assert normalise_all(items, workers=1) == expected


def test_the_gil_switch_interval_is_short_only_while_helpers_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_HELPERS", 0)
    monkeypatch.setattr(parallel, "BATCH", 3)
    before = sys.getswitchinterval()
    outcomes = parallel.iter_outcomes(CELLS * 2, count=2 * len(CELLS), workers=2)
    next(outcomes)
    assert sys.getswitchinterval() < before
    outcomes.close()  # a caller that stops early (an error while sorting rows) restores it too
    assert sys.getswitchinterval() == before
    assert len(list(parallel.iter_outcomes(CELLS * 2, count=2 * len(CELLS), workers=2))) == 2 * len(
        CELLS
    )
    assert sys.getswitchinterval() == before


def test_helpers_exit_on_their_own_once_the_work_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "MIN_ROWS_FOR_HELPERS", 0)
    monkeypatch.setattr(parallel, "BATCH", 3)
    assert len(parallel.normalise_all(CELLS * 2, workers=2)) == 2 * len(CELLS)
    deadline = time.monotonic() + 30
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []


def test_two_threads_ingesting_leave_the_interval_as_it_was() -> None:
    before = sys.getswitchinterval()
    first, second = parallel._prompt_threads(), parallel._prompt_threads()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first one out must not restore yet
    assert sys.getswitchinterval() < before
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before
