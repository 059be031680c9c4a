"""Pacing rules on plain numbers: the round-trip floor and counting a request by its answer."""

from __future__ import annotations

import random

import pytest

from callerid.plivo.pacing import PacingWindow, RoundTripFloor


@pytest.mark.parametrize("size", [1, 3, 16])
def test_round_trip_floor_is_the_minimum_of_the_last_samples(size: int) -> None:
    rng = random.Random(size)
    floor = RoundTripFloor(size)
    assert floor.value is None
    seen: list[float] = []
    for _ in range(300):
        sample = rng.choice((rng.uniform(0.0, 1.0), 0.5))  # ties too
        seen.append(sample)
        assert floor.add(sample) == min(seen[-size:])
        assert floor.value == min(seen[-size:])


def test_a_slow_answer_moves_the_request_later_by_its_excess() -> None:
    window = PacingWindow(2, 1.0, margin_s=0.0, burst=2)
    window.record(0.0)
    window.record(0.1)
    assert window.answered(0.0, 0.25) == pytest.approx(0.0)  # first sample is the floor itself
    assert window.answered(0.1, 0.85) == pytest.approx(0.1 + 0.75 - 0.25)  # 0.5 over the floor
    # the oldest kept is 0.0, the other request now counts from 0.6
    assert window.delay(1.0) == 0.0
    window.record(1.0)
    assert window.delay(1.0) == pytest.approx(0.6)  # 0.6 + 1.0 - 1.0


def test_steady_latency_costs_no_throughput() -> None:
    """Every request takes 250 ms: no excess, so slots stay where the wire put them."""
    window = PacingWindow(3, 1.0, margin_s=0.0, burst=3)
    for t in (0.0, 0.1, 0.2):
        window.record(t)
        assert window.answered(t, t + 0.25) == pytest.approx(t)
    assert window.delay(1.0) == 0.0


def test_an_answer_earlier_than_the_wire_never_moves_a_request_back() -> None:
    window = PacingWindow(1, 1.0, margin_s=0.0, burst=1)
    window.record(0.5)
    assert window.answered(0.5, 0.4) == 0.5  # a clock hiccup: a round trip of 0 at worst
    assert window.delay(1.0) == pytest.approx(0.5)
