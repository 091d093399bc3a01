"""The Trio face of :class:`~trio_transcripts.ring.RingBuffer`: producers wait, never drop.

The reader ``await``s :meth:`BackpressureQueue.put` before it takes the next frame from its
socket. While the ring is paused (above the high-water mark until it falls to the low mark)
or full, ``put`` blocks, the reader stops taking messages, the socket's small queue of them
fills and its reads stop (``sources/_socket.py``), and TCP pushes back on the server.
Nothing is skipped.

Waking is exact: producers park on one :class:`trio.lowlevel.ParkingLot` and are woken only
when a pop takes the ring out of its paused state; consumers park on another and are woken
by a push or by :meth:`close`. No polling, no sleeps. Following Trio's design rules, every
``async`` method checkpoints even when it does not block.
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

import trio

from .ring import DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, RingBuffer, RingStatistics

T = TypeVar("T")

_NOBODY_WAITS = 1 << 62


class BackpressureQueue(Generic[T]):
    """A bounded, hysteretic queue between one or more producers and a batching consumer."""

    def __init__(
        self,
        capacity: int,
        *,
        high_water: float = DEFAULT_HIGH_WATER,
        low_water: float = DEFAULT_LOW_WATER,
    ) -> None:
        self._ring: RingBuffer[T] = RingBuffer(capacity, high_water=high_water, low_water=low_water)
        self._room = trio.lowlevel.ParkingLot()
        self._items = trio.lowlevel.ParkingLot()
        self._wanted = 1  # the smallest count a parked consumer waits for
        self._closed = False

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def paused(self) -> bool:
        return self._ring.paused

    @property
    def closed(self) -> bool:
        return self._closed

    def statistics(self) -> RingStatistics:
        return self._ring.statistics()

    def _accepting(self) -> bool:
        return not (self._ring.paused or self._ring.full)

    def _pushed(self) -> None:
        # Wake consumers only when one of them has what it waits for, or producers are about
        # to block; the woken ones that still want more park again and say how many.
        if len(self._ring) >= self._wanted or not self._accepting():
            self._wanted = _NOBODY_WAITS
            self._items.unpark_all()

    def put_nowait(self, item: T) -> None:
        """Add ``item`` now, or raise :class:`trio.WouldBlock` while paused or full."""
        if self._closed:
            raise trio.ClosedResourceError("put on a closed BackpressureQueue")
        if not self._accepting():
            raise trio.WouldBlock
        self._ring.push(item)
        self._pushed()

    def put_unbounded(self, item: T) -> None:
        """Add ``item`` even while paused; still refuses (loudly) when truly full.

        For the shutdown flush of the coalescer, which must not wait on a writer that may
        already be draining; the room between the high mark and capacity is its reserve.
        """
        if self._closed:
            raise trio.ClosedResourceError("put on a closed BackpressureQueue")
        self._ring.push(item)
        self._pushed()

    async def put(self, item: T) -> None:
        """Add ``item``, waiting while the ring is paused or full."""
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        while not self._closed and not self._accepting():
            parked = True
            await self._room.park()
        self.put_nowait(item)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def get_batch(
        self, max_items: int, *, deadline: float = math.inf, min_items: int = 1
    ) -> list[T]:
        """Up to ``max_items`` oldest items, once there are ``min_items`` of them.

        Waits until the queue holds ``min(min_items, max_items)`` items, or producers are
        blocked (the ring is paused or full: waiting longer would only stall them), or it is
        closed, or ``deadline`` passes; then takes what is there, possibly nothing at the
        deadline. A batching consumer asks for a whole batch this way and is woken once,
        not once per item. Raises :class:`trio.EndOfChannel` once closed and empty.
        """
        if max_items < 1 or min_items < 1:
            raise ValueError(
                f"max_items and min_items must be at least 1, got {max_items}, {min_items}"
            )
        need = min(min_items, max_items)
        await trio.lowlevel.checkpoint_if_cancelled()
        parked = False
        with trio.move_on_at(deadline):
            while len(self._ring) < need and self._accepting() and not self._closed:
                parked = True
                self._wanted = min(self._wanted, need)
                await self._items.park()
        if not self._ring and self._closed:
            raise trio.EndOfChannel
        batch = self.take_nowait(max_items)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return batch

    def take_nowait(self, max_items: int) -> list[T]:
        """Up to ``max_items`` oldest items now (possibly none); wakes producers if it may."""
        batch = self._ring.pop_many(max_items)
        if batch and self._accepting():
            self._room.unpark_all()
        return batch

    def close(self) -> None:
        """No more puts. Consumers still get what is queued, then :class:`trio.EndOfChannel`.

        Producers parked in :meth:`put` wake and get :class:`trio.ClosedResourceError`.
        """
        self._closed = True
        self._items.unpark_all()
        self._room.unpark_all()
