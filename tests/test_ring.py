"""The pure ring buffer, against a ``collections.deque`` model of the specification."""

from __future__ import annotations

import math
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_transcripts.ring import RingBuffer, RingFull, water_marks


class RingMachine(RuleBasedStateMachine):
    """Every operation is mirrored on a deque; the spec of ``paused`` is restated here.

    paused turns on when the count reaches ceil(0.85 * capacity) (at least 1, at most
    capacity) and off only when it falls to floor(0.30 * capacity) (below the high mark).
    """

    @initialize(capacity=st.integers(1, 40))
    def setup(self, capacity: int) -> None:
        self.ring: RingBuffer[int] = RingBuffer(capacity)
        self.model: deque[int] = deque()
        self.capacity = capacity
        self.high = min(capacity, max(1, math.ceil(capacity * 0.85)))
        self.low = min(self.high - 1, math.floor(capacity * 0.30))
        self.paused = False
        self.next_item = 0

    @rule()
    def push(self) -> None:
        item = self.next_item
        self.next_item += 1
        if len(self.model) == self.capacity:
            with pytest.raises(RingFull):
                self.ring.push(item)
            return
        self.ring.push(item)
        self.model.append(item)
        if len(self.model) >= self.high:
            self.paused = True

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def pop(self) -> None:
        assert self.ring.pop() == self.model.popleft()
        if len(self.model) <= self.low:
            self.paused = False

    @rule(limit=st.integers(1, 50))
    def pop_many(self, limit: int) -> None:
        expected = [self.model.popleft() for _ in range(min(limit, len(self.model)))]
        assert self.ring.pop_many(limit) == expected
        if len(self.model) <= self.low:
            self.paused = False

    @precondition(lambda self: len(self.model) == 0)
    @rule()
    def pop_empty(self) -> None:
        with pytest.raises(IndexError):
            self.ring.pop()

    @invariant()
    def matches_model(self) -> None:
        assert len(self.ring) == len(self.model) <= self.capacity
        assert self.ring.occupancy == len(self.model) / self.capacity
        assert self.ring.full == (len(self.model) == self.capacity)
        assert self.ring.paused == self.paused
        stats = self.ring.statistics()
        assert stats.pushed - stats.popped == len(self.model)


TestRingMachine = RingMachine.TestCase


@given(st.integers(1, 10_000), st.floats(0.01, 1.0), st.floats(0.0, 1.0))
def test_water_marks_leave_a_band(capacity: int, high: float, low_fraction: float) -> None:
    low = high * low_fraction * 0.999
    hi_mark, lo_mark = water_marks(capacity, high, low)
    assert 1 <= hi_mark <= capacity
    assert 0 <= lo_mark < hi_mark


def test_defaults_are_85_and_30_percent() -> None:
    ring: RingBuffer[int] = RingBuffer(100)
    assert (ring.high_mark, ring.low_mark) == (85, 30)


def test_push_into_full_ring_changes_nothing() -> None:
    ring: RingBuffer[str] = RingBuffer(2)
    ring.push("a")
    ring.push("b")
    with pytest.raises(RingFull, match="ring buffer full"):
        ring.push("c")
    assert len(ring) == 2 and ring.pop_many(3) == ["a", "b"]


def test_hysteresis_does_not_flap_between_marks() -> None:
    ring: RingBuffer[int] = RingBuffer(10)  # high 9, low 3
    for i in range(9):
        ring.push(i)
    assert ring.paused
    for _ in range(5):
        ring.pop()  # 4 left: between the marks, still paused
        assert ring.paused
        ring.push(0)
        ring.pop()
    ring.pop()  # 3 left: the low mark
    assert not ring.paused
    assert ring.statistics().pauses == 1


@pytest.mark.parametrize(
    ("capacity", "high", "low"), [(0, 0.85, 0.3), (10, 0.0, 0.0), (10, 0.5, 0.5), (10, 1.5, 0.3)]
)
def test_bad_configuration_is_refused(capacity: int, high: float, low: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        RingBuffer(capacity, high_water=high, low_water=low)
