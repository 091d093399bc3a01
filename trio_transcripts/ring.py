"""A bounded FIFO ring with high/low-water hysteresis. Pure: no Trio, no I/O.

The reference design's ring overwrote its oldest entry when full, silently losing data. This
one never overwrites and never drops: a push into a full ring raises :class:`RingFull`, and
the producer is expected to have stopped long before that, when :attr:`RingBuffer.paused`
turned on at the high-water mark. ``paused`` turns off only when occupancy falls back to the
low-water mark, so a producer hovering around one threshold does not flap.

The Trio wrapper that makes producers wait lives in :mod:`trio_transcripts.backpressure`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_HIGH_WATER = 0.85
DEFAULT_LOW_WATER = 0.30


class RingFull(Exception):
    """Raised by :meth:`RingBuffer.push` when the ring holds ``capacity`` items."""


@dataclass(frozen=True, slots=True)
class RingStatistics:
    capacity: int
    count: int
    high_mark: int
    low_mark: int
    paused: bool
    peak: int
    pushed: int
    popped: int
    pauses: int


def water_marks(capacity: int, high_water: float, low_water: float) -> tuple[int, int]:
    """Item counts for the fractional marks: paused at ``>= high``, resumed at ``<= low``.

    The high mark is rounded up and kept in ``[1, capacity]``; the low mark is rounded down
    and kept strictly below the high mark, so there is always a band of hysteresis.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be at least 1, got {capacity}")
    if not 0.0 < high_water <= 1.0:
        raise ValueError(f"high_water must be in (0, 1], got {high_water}")
    if not 0.0 <= low_water < high_water:
        raise ValueError(f"low_water must be in [0, high_water), got {low_water}")
    high = min(capacity, max(1, math.ceil(capacity * high_water)))
    low = min(high - 1, math.floor(capacity * low_water))
    return high, low


class RingBuffer(Generic[T]):
    """Fixed-capacity FIFO with O(1) push and pop, and a hysteretic ``paused`` flag."""

    __slots__ = (
        "_count",
        "_head",
        "_items",
        "_paused",
        "_pauses",
        "_peak",
        "_popped",
        "_pushed",
        "capacity",
        "high_mark",
        "low_mark",
    )

    def __init__(
        self,
        capacity: int,
        *,
        high_water: float = DEFAULT_HIGH_WATER,
        low_water: float = DEFAULT_LOW_WATER,
    ) -> None:
        self.high_mark, self.low_mark = water_marks(capacity, high_water, low_water)
        self.capacity = capacity
        self._items: list[T | None] = [None] * capacity
        self._head = 0
        self._count = 0
        self._paused = False
        self._peak = 0
        self._pushed = 0
        self._popped = 0
        self._pauses = 0

    def __len__(self) -> int:
        return self._count

    @property
    def paused(self) -> bool:
        """True from reaching the high mark until falling back to the low mark."""
        return self._paused

    @property
    def full(self) -> bool:
        return self._count == self.capacity

    @property
    def occupancy(self) -> float:
        return self._count / self.capacity

    def push(self, item: T) -> None:
        """Append ``item``; raise :class:`RingFull` (and change nothing) when full."""
        if self._count == self.capacity:
            raise RingFull(
                f"ring buffer full ({self.capacity} items); the producer should have paused "
                f"at the high-water mark ({self.high_mark})"
            )
        self._items[(self._head + self._count) % self.capacity] = item
        self._count += 1
        self._pushed += 1
        if self._count > self._peak:
            self._peak = self._count
        if not self._paused and self._count >= self.high_mark:
            self._paused = True
            self._pauses += 1

    def pop(self) -> T:
        """Remove and return the oldest item; raise ``IndexError`` when empty."""
        if self._count == 0:
            raise IndexError("pop from an empty ring buffer")
        item = self._items[self._head]
        self._items[self._head] = None  # let the item be collected once the caller drops it
        self._head = (self._head + 1) % self.capacity
        self._count -= 1
        self._popped += 1
        if self._paused and self._count <= self.low_mark:
            self._paused = False
        return item  # type: ignore[return-value]

    def pop_many(self, limit: int) -> list[T]:
        """Remove and return up to ``limit`` oldest items, oldest first."""
        return [self.pop() for _ in range(min(limit, self._count))]

    def statistics(self) -> RingStatistics:
        return RingStatistics(
            capacity=self.capacity,
            count=self._count,
            high_mark=self.high_mark,
            low_mark=self.low_mark,
            paused=self._paused,
            peak=self._peak,
            pushed=self._pushed,
            popped=self._popped,
            pauses=self._pauses,
        )
