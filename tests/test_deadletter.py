"""The dead-letter file: complete records, written in batches, never lost to a cancellation."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from trio_transcripts.sinks.deadletter import DeadLetters, read_dead_letters


async def test_a_cancelled_writer_task_loses_no_record(tmp_path: Path) -> None:
    # The worker cancels the writer task last and then flushes: a record the task had taken
    # from the queue when the cancellation came must still reach the file.
    dead = DeadLetters(tmp_path / "dead.jsonl")
    scope = trio.CancelScope()

    async def writer() -> None:
        with scope:
            await dead.run()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        dead.put_nowait("frame", b'{"kind": "frame"}\n')
        await trio.lowlevel.checkpoint()  # the writer wakes and takes the lock...
        await trio.lowlevel.checkpoint()  # ...and the queued record
        scope.cancel()
    with trio.CancelScope(shield=True):
        await dead.flush()
    assert read_dead_letters(tmp_path / "dead.jsonl") == [{"kind": "frame"}]
    assert dead.counts == {"frame": 1} and dead.pending == 0


async def test_put_waits_while_the_queue_is_past_its_bound(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "dead.jsonl", max_pending_bytes=10)
    line = b'{"kind": "frame"}\n'  # 18 bytes: one record passes the bound
    await dead.put("frame", line)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(dead.put, "frame", line)
        await trio.testing.wait_all_tasks_blocked()
        assert dead.pending == 1, "the second record waits for the disk"
        await dead.flush()
        await trio.testing.wait_all_tasks_blocked()
        assert dead.pending == 1 and dead.counts == {"frame": 1}
        await dead.flush()
    assert len(read_dead_letters(tmp_path / "dead.jsonl")) == 2


async def test_a_cancelled_put_queued_nothing_and_a_completed_one_is_not_cancelled(
    tmp_path: Path,
) -> None:
    letters = DeadLetters(tmp_path / "dead.jsonl")
    with trio.CancelScope() as scope:
        scope.cancel()
        await letters.put("frame", b"one\n")
    assert scope.cancelled_caught and letters.pending == 0, "cancelled means not queued"
    with trio.CancelScope() as scope:
        await letters.put("frame", b"two\n")
        scope.cancel()  # after it returned: it did queue, and said so
    assert letters.pending == 1
    # What the worker does with a cancelled put: it queues the record itself, once.
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await letters.put("frame", b"three\n")
        except trio.Cancelled:
            letters.put_nowait("frame", b"three\n")
            raise
    await letters.flush()
    assert (tmp_path / "dead.jsonl").read_text() == "two\nthree\n"
