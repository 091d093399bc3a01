"""A full disk is an outage: every file the worker writes waits for space, tears nothing,
reports nothing it did not write, and says what it could not keep (``diskfull.py``).

On a tmpfs of the test's own (``small_disk``: root, as in CI), filled mid-stream and freed.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from trio_transcripts.cli import exit_code
from trio_transcripts.completeness import Completeness
from trio_transcripts.config import WorkerSettings
from trio_transcripts.coverage import Gap as CoverageGap
from trio_transcripts.coverage import Why
from trio_transcripts.diskfull import Disk, append_whole
from trio_transcripts.errors import EXIT_NOT_KEPT, DataNotKept, FatalError
from trio_transcripts.gaprecords import BackfillQueue
from trio_transcripts.journal import Journal
from trio_transcripts.lineproto import decode
from trio_transcripts.model import Fragment, Merge, Utterance
from trio_transcripts.retry import Backoff
from trio_transcripts.sinks import WriteResult
from trio_transcripts.sinks.deadletter import DeadLetters, read_dead_letters
from trio_transcripts.sinks.file import FileSink
from trio_transcripts.snapshot import readiness
from trio_transcripts.sources import Emit, Gap
from trio_transcripts.spool import Spool, SpoolFull, SpoolingSink, encode_record
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.worker import Worker

from .pipeline import read_until_exit, simulator_env, start_worker_process
from .test_influx_sink import utterance
from .waiting import until

QUICK = Backoff(base_s=0.005, cap_s=0.02)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler's path (unlink it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        chunk = 1 << 16
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    return filler


def final(i: int) -> Fragment:
    return Fragment("conv-1", f"utt-{i:04d}", "customer", f"words {i}", 0.9, i, i + 1, True)


class ChannelSource:
    """Emits what the test sends it, as it comes: the test paces the stream."""

    kind = "fragments"
    merge = Merge.APPEND

    def __init__(self, fragments: trio.MemoryReceiveChannel[Fragment]) -> None:
        self.fragments = fragments

    @property
    def gaps(self) -> list[Gap]:
        return []

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        async for fragment in self.fragments:
            await emit(fragment, f"frame of {fragment.utterance_id}")
        await trio.sleep_forever()


def stored_ids(path: Path) -> list[str]:
    """Every line of a line-protocol file, decoded (a torn line fails here)."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), "no half line at the end"
    return [str(decode(line).fields["utteranceId"]) for line in data.decode("utf-8").splitlines()]


def worker_on(disk_dir: Path, disk: Disk, send_fragments: int = 0, **settings: object):  # type: ignore[no-untyped-def]
    send, receive = trio.open_memory_channel[Fragment](send_fragments)
    worker = Worker(
        source=ChannelSource(receive),
        sink=FileSink(disk_dir / "out.lp", disk=disk),
        dead_letters=DeadLetters(disk_dir / "dead.jsonl", disk=disk),
        disk=disk,
        settings=WorkerSettings(batch_wait_ms=1, buffer_capacity=20, **settings),  # type: ignore[arg-type]
    )
    return worker, send


async def test_a_full_disk_holds_the_file_sink_and_everything_goes_out_once_it_has_room(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "trio_transcripts.disk")
    disk = Disk(backoff=QUICK, say_every_s=0)
    worker, send = worker_on(small_disk, disk)
    out = small_disk / "out.lp"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            for i in range(10):
                await send.send(final(i))
            await until(lambda: worker.account.persisted == 10)
            filler = fill(small_disk)

            async def send_more() -> None:
                for i in range(10, 200):
                    await send.send(final(i))

            nursery.start_soon(send_more)
            # The writer waits for space; the ring fills and holds the reader (backpressure).
            await until(lambda: worker.snapshot().disk_full and worker.snapshot().ring_paused)
            checks = readiness(worker.snapshot(), ready_sink_s=60)
            assert not checks["disk"]["ok"]
            assert "out.lp: No space left on device (0 bytes free)" in str(checks["disk"]["detail"])
            # What the file's last page still held went in; every line is whole (a torn one
            # fails to decode), and exactly those were reported written.
            stored = stored_ids(out)
            assert stored == [f"utt-{i:04d}" for i in range(len(stored))] and len(stored) >= 10
            assert worker.account.persisted == len(stored), "nothing reported not written"
            filler.unlink()
            await until(lambda: worker.account.persisted == 200)
            assert (
                not worker.snapshot().disk_full and readiness(worker.snapshot(), 60)["disk"]["ok"]
            )
            worker.stop()
    assert stored_ids(out) == [f"utt-{i:04d}" for i in range(200)], "each once, in order"
    said = caplog.text
    assert "disk full: cannot write" in said and str(out) in said and "0 bytes free" in said
    assert "disk has room again" in said
    assert worker.account.not_kept == {} and worker.account.dead_lettered == 0


async def test_a_shutdown_on_a_full_disk_says_what_was_not_kept_and_exits_74(
    small_disk: Path, autojump_clock: trio.testing.MockClock
) -> None:
    disk = Disk(backoff=QUICK)
    worker, send = worker_on(small_disk, disk, send_fragments=5, shutdown_timeout_s=1.0)
    filler = fill(small_disk)
    with pytest.RaisesGroup(DataNotKept) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            for i in range(5):
                await send.send(final(i))
            await until(lambda: worker.snapshot().disk_full)
            worker.stop()
    error = caught.value.exceptions[0]
    assert isinstance(error, DataNotKept)
    assert error.lost == {"utterance": 5}
    assert "5 utterance(s) could not be written anywhere" in str(error)
    account = worker.account
    assert account.not_kept == {"utterance": 5}
    assert account.persisted == 0 and account.dead_lettered == 0, "nothing claimed as written"
    assert "NOT KEPT anywhere: 5 utterance(s)" in account.summary()
    filler.unlink()
    assert (
        stored_ids(small_disk / "out.lp") == []
        and read_dead_letters(small_disk / "dead.jsonl") == []
    )

    def command() -> int:
        raise error

    assert exit_code(command, debug=False) == EXIT_NOT_KEPT == 74


def test_a_spool_append_on_a_full_disk_changes_nothing(small_disk: Path) -> None:
    spool = Spool(small_disk / "spool")
    batch = [utterance(0)]
    spool.append(batch)
    path = spool.files()[0]
    before = path.read_bytes()
    filler = fill(small_disk)
    big = [utterance(i, text="x" * 2000) for i in range(4)]
    with pytest.raises(SpoolFull, match="No space left"):
        spool.append(big)
    assert path.read_bytes() == before and spool.bytes == len(before), "no torn record"
    filler.unlink()
    spool.append(big)
    assert spool.bytes == len(before) + len(encode_record(big))


class Recording:
    """A store that takes everything, and remembers each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await trio.lowlevel.checkpoint()
        self.batches.append([u.utterance_id for u in utterances])
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> str:
        return "recording"


async def test_the_replays_markers_wait_out_a_full_disk_and_each_record_goes_once(
    small_disk: Path,
) -> None:
    spool = Spool(small_disk / "spool")
    for i in range(3):
        spool.append([utterance(i)])
    disk = Disk(backoff=QUICK)
    store = Recording()
    sink = SpoolingSink(store, spool, disk=disk)
    reported: list[WriteResult] = []
    emptied = trio.Event()
    filler = fill(small_disk)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await sink.open()
            nursery.start_soon(sink.replay, reported.append, emptied.set)
            # The store took the first record; its marker waits for space.
            await until(lambda: disk.refused() and store.batches)
            assert [r.path.name for r in disk.refused()] == ["spool-00000000.acked"]
            assert store.batches == [["utt-0"]] and len(reported) == 1
            filler.unlink()
            await emptied.wait()
            nursery.cancel_scope.cancel()
        await sink.aclose()
    assert store.batches == [["utt-0"], ["utt-1"], ["utt-2"]], "each record once"
    assert sum(r.acknowledged for r in reported) == 3 and spool.files() == []


def test_an_append_cut_short_leaves_the_file_as_it_was(small_disk: Path) -> None:
    path = small_disk / "lines"
    append_whole(path, b"one\n")
    filler = fill(small_disk)
    with pytest.raises(OSError, match="No space left on device"):
        append_whole(path, b"two " * 10_000 + b"\n")
    assert path.read_bytes() == b"one\n"
    filler.unlink()


async def test_the_worker_process_on_a_full_disk_exits_74_and_says_what_it_did_not_keep(
    small_disk: Path,
) -> None:
    sim = Simulator(SimConfig(calls=1, utterances=400, rate=200.0))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            process = await start_worker_process(
                nursery,
                "--no-backfill",
                "--shutdown-timeout",
                "0.5",
                env=simulator_env(info),
                cwd=small_disk,
            )
            out = small_disk / "transcripts.lp"
            await until(lambda: out.exists() and out.stat().st_size > 0)
            fill(small_disk)
            assert process.stderr is not None
            said = b""
            while b"disk full: cannot write" not in said:
                said += await process.stderr.receive_some(65536)
            process.send_signal(signal.SIGTERM)
            said += await read_until_exit(process)
            nursery.cancel_scope.cancel()
    text = said.decode()
    assert process.returncode == EXIT_NOT_KEPT, text
    assert "could not be written anywhere" in text and "NOT KEPT anywhere" in text
    assert "written to" not in text, "nothing said written that was not"
    stored_ids(out)  # whole lines only


async def test_a_torn_last_line_left_by_a_crash_is_cut_when_the_file_sink_opens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.lp"
    sink = FileSink(out)
    await sink.open()
    await sink.write([utterance(0)])
    whole = out.read_bytes()
    # What a SIGKILL between a short write and its roll-back leaves:
    out.write_bytes(whole + b'transcriptions,conversationId=conv-1 text="half')
    sink = FileSink(out)
    await sink.open()
    await sink.write([utterance(1)])
    assert stored_ids(out) == ["utt-0", "utt-1"] and out.read_bytes().startswith(whole)
    assert "cut 47 bytes of a torn last line" in caplog.text


async def test_the_state_directory_on_a_full_disk_waits_in_memory_and_is_said(
    small_disk: Path,
) -> None:
    state = small_disk / "state"
    disk = Disk()
    completeness = Completeness(BackfillQueue(state), Journal(state), disk=disk)
    completeness.start((), ("c-1",), keep_settled_ms=3_600_000)
    filler = fill(small_disk)
    gap = CoverageGap("c-1", 1_000, 2_000, Why.DROP, ("m",))
    completeness.queue_gaps([gap])
    completeness.flush(keep_settled_ms=3_600_000)
    # The journal's few bytes may still fit its last page; the queue's new record does not.
    assert "backfill-queue.jsonl" in [r.path.name for r in disk.refused()]
    unwritten = completeness.unwritten()
    assert unwritten.disk_full and unwritten.counts["gap record"] == 1
    assert "(--state-dir)" in unwritten.where[0]
    filler.unlink()
    completeness.flush(keep_settled_ms=3_600_000)
    assert disk.refused() == () and completeness.unwritten().counts == {}
    assert list(BackfillQueue(state).load()) == ["c-1"], "the gap record is on disk"


async def test_a_dead_letter_file_that_cannot_be_written_exits_1_not_74(
    read_only_dir: Path, tmp_path: Path
) -> None:
    # Waiting does not make a read-only directory writable: that is not the disk being full.
    letters = DeadLetters(read_only_dir / "dead.jsonl")
    letters.put_nowait("frame", b'{"kind": "frame"}\n')
    unwritten = await letters.close()
    assert dict(unwritten.counts) == {"frame": 1} and not unwritten.disk_full
    worker = Worker(
        source=ChannelSource(trio.open_memory_channel[Fragment](0)[1]),
        sink=FileSink(tmp_path / "out.lp"),
        dead_letters=letters,
    )
    with pytest.RaisesGroup(FatalError, check=lambda e: not isinstance(e, DataNotKept)) as caught:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            worker.stop()
    error = caught.value.exceptions[0]
    assert "1 frame(s) could not be written anywhere: the dead-letter file" in str(error)

    def command() -> int:
        raise error

    assert exit_code(command, debug=False) == 1


class Gate:
    """A store that is down until ``opened`` is set, then takes everything, remembering it."""

    def __init__(self) -> None:
        self.opened = trio.Event()
        self.taken: list[str] = []

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await self.opened.wait()
        self.taken += [u.utterance_id for u in utterances]
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> str:
        return "a store that is down"


async def test_the_spool_on_a_disk_that_fills_mid_stream_loses_and_repeats_nothing(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Real time: the spool's appends run in threads, which a mock clock would jump past.
    caplog.set_level(logging.ERROR, "trio_transcripts.disk")
    disk = Disk(backoff=QUICK, say_every_s=0)
    store = Gate()
    send, receive = trio.open_memory_channel[Fragment](0)
    worker = Worker(
        source=ChannelSource(receive),
        sink=store,
        spool=Spool(small_disk / "spool"),
        dead_letters=DeadLetters(small_disk / "dead.jsonl", disk=disk),
        disk=disk,
        settings=WorkerSettings(batch_wait_ms=1, buffer_capacity=50, spool_after_s=0.05),
    )
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            for i in range(20):  # the store is down: these go to the spool
                await send.send(final(i))
            await until(lambda: worker.account.spooled == 20)
            filler = fill(small_disk)

            async def send_more() -> None:
                # 2 KiB each: far more than the spool file's last page can still take, so
                # the disk refuses (what that page held goes in, and is replayed once too)
                for i in range(20, 120):
                    await send.send(msgspec.structs.replace(final(i), text="x" * 2048))

            nursery.start_soon(send_more)
            await until(lambda: worker.snapshot().disk_full_waits > 0)
            assert f"disk full: cannot write {small_disk / 'spool'}" in caplog.text
            filler.unlink()
            store.opened.set()
            await until(lambda: len(store.taken) >= 120 and worker.idle())
            worker.stop()
    assert sorted(store.taken) == [f"utt-{i:04d}" for i in range(120)], "each once"
    assert worker.account.persisted == 120 and worker.account.not_kept == {}
    assert Spool(small_disk / "spool").files() == [], "replayed whole, and removed"
