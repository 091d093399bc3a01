"""The Trio wrapper: producers block (never drop) above the high mark; waking is exact."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.backpressure import BackpressureQueue


async def test_producer_blocks_at_high_mark_and_resumes_at_low_mark() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(10)  # high 9, low 3
    produced: list[int] = []

    async def producer() -> None:
        for i in range(20):
            await queue.put(i)
            produced.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        assert produced == list(range(9))
        assert queue.paused

        assert await queue.get_batch(5) == [0, 1, 2, 3, 4]  # 4 left: above the low mark
        await trio.testing.wait_all_tasks_blocked()
        assert len(produced) == 9, "producer must stay blocked between the marks"

        assert await queue.get_batch(1) == [5]  # 3 left: the low mark
        await trio.testing.wait_all_tasks_blocked()
        assert produced == list(range(15))
        assert queue.paused

        received = [0, 1, 2, 3, 4, 5]
        while len(received) < 20:
            received += await queue.get_batch(4)
    assert received == list(range(20))
    assert queue.statistics().peak <= 10


async def test_get_batch_waits_for_one_item_then_returns_without_waiting_for_more() -> None:
    queue: BackpressureQueue[str] = BackpressureQueue(8)
    async with trio.open_nursery() as nursery:
        result: list[list[str]] = []

        async def consumer() -> None:
            result.append(await queue.get_batch(5))

        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        assert result == []
        queue.put_nowait("a")
    assert result == [["a"]]


async def test_get_batch_deadline_returns_empty(autojump_clock: trio.testing.MockClock) -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(4)
    start = trio.current_time()
    assert await queue.get_batch(10, deadline=start + 0.1) == []
    assert trio.current_time() - start == pytest.approx(0.1)


async def test_get_batch_with_min_items_waits_for_the_whole_batch() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(10)  # high 9
    result: list[list[int]] = []

    async def consumer() -> None:
        result.append(await queue.get_batch(6, min_items=4))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        for i in range(3):
            await queue.put(i)
        await trio.testing.wait_all_tasks_blocked()
        assert result == [], "three of four: the consumer keeps waiting"
        await queue.put(3)
    assert result == [[0, 1, 2, 3]]


async def test_get_batch_with_min_items_takes_what_is_there_when_producers_would_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(10)  # high 9
    result: list[list[int]] = []

    async def consumer() -> None:
        result.append(await queue.get_batch(50, min_items=50))

    # With the clock jumping whenever all tasks wait, a consumer that never wakes fails here.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            for i in range(9):
                await queue.put(i)
    assert result == [list(range(9))], "waiting for 50 would stall the producer for good"


async def test_get_batch_with_min_items_returns_the_partial_batch_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(10)
    await queue.put(1)
    await queue.put(2)
    start = trio.current_time()
    assert await queue.get_batch(5, min_items=5, deadline=start + 0.1) == [1, 2]
    assert trio.current_time() - start == pytest.approx(0.1)


async def test_close_delivers_the_rest_then_end_of_channel() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(4)
    await queue.put(1)
    await queue.put(2)
    queue.close()
    assert await queue.get_batch(10) == [1, 2]
    with pytest.raises(trio.EndOfChannel):
        await queue.get_batch(10)
    with pytest.raises(trio.ClosedResourceError):
        await queue.put(3)


async def test_close_wakes_a_blocked_producer_with_an_error() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(1)
    await queue.put(0)
    outcome: list[BaseException] = []

    async def blocked_producer() -> None:
        try:
            await queue.put(1)
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_producer)
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == []
        queue.close()
    assert len(outcome) == 1
    assert await queue.get_batch(5) == [0], "what was queued before close is kept"


async def test_put_nowait_refuses_while_paused() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(4)  # high 4
    for i in range(4):
        queue.put_nowait(i)
    with pytest.raises(trio.WouldBlock):
        queue.put_nowait(4)
    assert len(queue) == 4


async def test_async_methods_always_checkpoint() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(4)
    with trio.testing.assert_checkpoints():
        await queue.put(1)
    with trio.testing.assert_checkpoints():
        await queue.get_batch(1)


async def test_cancelled_put_adds_nothing() -> None:
    queue: BackpressureQueue[int] = BackpressureQueue(1)
    await queue.put(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.put, 1)
        await trio.testing.wait_all_tasks_blocked()  # parked on the full ring
        nursery.cancel_scope.cancel()
    assert queue.take_nowait(10) == [0]


@given(
    items=st.integers(0, 200),
    capacity=st.integers(1, 16),
    batch_sizes=st.lists(st.integers(1, 20), min_size=1, max_size=10),
    min_sizes=st.lists(st.integers(1, 20), min_size=1, max_size=10),
    producers=st.integers(1, 3),
)
async def test_every_item_arrives_once_in_order_per_producer(
    items: int, capacity: int, batch_sizes: list[int], min_sizes: list[int], producers: int
) -> None:
    queue: BackpressureQueue[tuple[int, int]] = BackpressureQueue(capacity)
    received: list[tuple[int, int]] = []

    async def producer(pid: int) -> None:
        for i in range(items):
            await queue.put((pid, i))

    async def consumer() -> None:
        turn = 0
        while True:
            try:
                batch = await queue.get_batch(
                    batch_sizes[turn % len(batch_sizes)], min_items=min_sizes[turn % len(min_sizes)]
                )
            except trio.EndOfChannel:
                return
            assert len(batch) <= capacity
            received.extend(batch)
            turn += 1

    async with trio.open_nursery() as outer:
        outer.start_soon(consumer)
        async with trio.open_nursery() as inner:
            for pid in range(producers):
                inner.start_soon(producer, pid)
        queue.close()
    for pid in range(producers):
        assert [i for p, i in received if p == pid] == list(range(items))
    assert len(received) == items * producers
    assert queue.statistics().peak <= capacity
