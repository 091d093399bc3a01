"""The durable spool: records, crash points, and replays against a real InfluxDB."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.model import Utterance
from trio_transcripts.sinks import WriteResult
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.spool import Spool, SpoolFull, SpoolingSink, decode_records, encode_record
from trio_transcripts.testing.influxd import Influxd

from .pipeline import spool_pending


def batch(n: int, start: int = 0) -> list[Utterance]:
    return [
        Utterance(
            "c1",
            f"u{i}",
            "agent",
            f'text {i} «é» "q"',
            0.5,
            1773957873000 + i,
            1773957874000 + i,
            True,
            2,
            (("dialect", "en-US"), ("sessionStartTimeMs", 5)),
        )
        for i in range(start, start + n)
    ]


def test_records_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(3))
    spool.append(batch(2, 3))
    (path,) = spool.files()
    contents = spool.read(path)
    assert contents.problem is None and contents.records == [batch(3), batch(2, 3)]


def test_torn_last_record_is_detected_kept_aside_and_the_rest_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(3))
    spool.append(batch(4, 3))
    (path,) = spool.files()
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # a crash in the middle of the second write
    contents = Spool(tmp_path).read(path)
    assert contents.records == [batch(3)]
    assert contents.problem is not None and "torn record" in contents.problem
    assert path.with_suffix(".torn").read_bytes() == whole[len(encode_record(batch(3))) : -7]
    assert Spool(tmp_path).read(path).problem is None, "the file is whole again"


def test_checksum_mismatch_is_detected(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(2))
    (path,) = spool.files()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    contents = spool.read(path)
    assert contents.records == [] and "checksum" in (contents.problem or "")


def test_disk_full_leaves_no_partial_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(2))
    (path,) = spool.files()
    size = path.stat().st_size

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpoolFull, match="No space left"):
        spool.append(batch(5))
    monkeypatch.undo()
    assert path.stat().st_size == size
    assert spool.read(path).records == [batch(2)]


def test_size_limit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=len(encode_record(batch(2))) + 10)
    spool.append(batch(2))
    with pytest.raises(SpoolFull, match="limit"):
        spool.append(batch(2))


@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.data())
def test_any_truncation_gives_a_clean_prefix(sizes: list[int], data: st.DataObject) -> None:
    records = [batch(n, 10 * i) for i, n in enumerate(sizes)]
    blob = b"".join(encode_record(r) for r in records)
    cut = data.draw(st.integers(0, len(blob)))
    decoded, whole, problem = decode_records(blob[:cut])
    assert decoded == records[: len(decoded)]
    assert (problem is None) == (whole == cut)


async def test_crash_between_acknowledgement_and_removal_replays_once(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(batch(5))
    settings = InfluxSettings(url=influxd.url, database=database)
    async with InfluxSink(settings) as sink:
        (path,) = spool.files()
        for record in spool.read(path).records:
            await sink.write(record)  # acknowledged... and then the process dies: no removal
        replaying = SpoolingSink(sink, Spool(tmp_path / "spool"))
        results: list[WriteResult] = []
        emptied = trio.Event()
        async with trio.open_nursery() as nursery:
            await replaying.open()
            nursery.start_soon(replaying.replay, results.append, emptied.set)
            await emptied.wait()
            nursery.cancel_scope.cancel()
    assert results == [WriteResult(acknowledged=5)] and replaying.bytes == 0
    rows = influxd.query("SELECT * FROM transcriptions", db=database)
    assert sorted(r["utteranceId"] for r in rows) == [f"u{i}" for i in range(5)], "once each"


class _PausingSpool(Spool):
    """Pauses an append halfway through its record while ``pause`` is set."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.pause = False
        self.halfway = threading.Event()
        self.resume = threading.Event()

    def append(self, utterances: Sequence[Utterance]) -> None:
        if not self.pause:
            super().append(utterances)
            return
        record = encode_record(utterances)
        path = self.directory / f"spool-{self._next:08d}.log"
        self._current, self._next = path, self._next + 1
        with open(path, "ab") as f:
            f.write(record[: len(record) // 2])
            f.flush()
            self.halfway.set()
            self.resume.wait()
            f.write(record[len(record) // 2 :])
        self.bytes += len(record)


class _HeldSink:
    """Takes nothing until ``release`` is set; records what it took."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.taken: list[Utterance] = []

    async def open(self) -> None:
        pass

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await self.release.wait()
        self.taken.extend(utterances)
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        pass

    def describe(self) -> str:
        return "held"


async def test_replay_never_reads_a_record_still_being_appended(tmp_path: Path) -> None:
    spool = _PausingSpool(tmp_path)
    inner = _HeldSink()
    sink = SpoolingSink(inner, spool, spool_after_s=0)  # every batch is spooled
    emptied = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.replay, lambda result: None, emptied.set)
        await sink.write(batch(2))  # spool-0, whole; the replay reads it, the sink holds it
        await trio.testing.wait_all_tasks_blocked()
        spool.pause = True
        nursery.start_soon(sink.write, batch(3, 2))  # spool-1, stopped halfway
        await trio.to_thread.run_sync(spool.halfway.wait)
        inner.release.set()  # spool-0 is written and removed; spool-1 is next
        await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        spool.resume.set()
        with trio.fail_after(10):
            await emptied.wait()
        nursery.cancel_scope.cancel()
    torn = [name for name in os.listdir(tmp_path) if name.endswith(".torn")]
    assert not torn, "a record in the middle of its append was read as torn"
    assert inner.taken == batch(2) + batch(3, 2)


def test_a_replay_cut_short_resumes_after_the_acknowledged_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(2))
    spool.append(batch(3, 2))
    (path,) = spool.files()
    spool.acknowledge(path, 1)  # the store took the first record; then a crash or a fatal error
    again = Spool(tmp_path)
    assert again.read(path).records == [batch(3, 2)]
    assert spool_pending(again) == 3
    again.remove(path)
    assert list(tmp_path.iterdir()) == []
