"""Broken or hostile state (issue 21): torn and corrupt files, directories that cannot be
used, two workers on one directory. Each: a line naming the path, nothing kept lost.

There is no ``heartbeat.json``: when the worker was last alive is the journal's ``alive``
record (``journal.py``), so a torn heartbeat is a torn journal line here.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts import coverage, gaprecords
from trio_transcripts.assemble import spool as configured_spool
from trio_transcripts.backfill import Backfiller, BackfillSettings
from trio_transcripts.completeness import Completeness
from trio_transcripts.config import Config
from trio_transcripts.dirlock import DirectoryInUse, DirectoryLock
from trio_transcripts.errors import FatalError
from trio_transcripts.gaprecords import QUEUE_FILE, BackfillQueue
from trio_transcripts.journal import JOURNAL_FILE, Journal
from trio_transcripts.lineproto import encode
from trio_transcripts.postcall import PostCallClient
from trio_transcripts.sinks.deadletter import DeadLetters
from trio_transcripts.sinks.file import FileSink
from trio_transcripts.spool import Spool, SpoolingSink
from trio_transcripts.stored import read_file
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import read_until_exit, simulator_env, start_worker_process
from .test_backfiller import NoCalls, Store, Tokens, settled
from .test_influx_sink import utterance
from .waiting import until

KEYS = [
    "type",
    "conversationId",
    "atMs",
    "queueId",
    "openSinceMs",
    "why",
    "heardBefore",
    "communicationId",
    "startMs",
    "endMs",
    "communications",
    "recordedMs",
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["gap", "done", "dead", "follow", "heard", "alive", "start", "queue"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@given(st.lists(st.dictionaries(st.sampled_from(KEYS), JSON), max_size=12))
def test_the_state_files_folds_take_any_records_without_raising(
    records: list[dict[str, object]],
) -> None:
    # What a hand, a bug of an older version or a broken disk can leave in either file.
    coverage.fold(records)
    gaprecords.fold(records)


def test_torn_and_corrupt_state_lines_are_skipped_said_and_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / JOURNAL_FILE).write_bytes(
        b'{"type": "alive", "atMs": 1700000000000}\n'
        b'{"type": "follow", "conversationId": "c-1", "openSinceMs": 1700000000000}\n'
        b"\xff\xfe not UTF-8\n"
        b"[1, 2]\n"
        b'{"type": "follow", "conversationId": "c-2"'  # torn: the crash came mid-append
    )
    (state / QUEUE_FILE).write_bytes(
        b'{"type": "gap", "conversationId": "c-3", "startMs": 1, "endMs": 2, "why": "drop"}\n'
        b'{"type": "gap", "conversationId": 5, "startMs": "x"}\n'
        b'{"type": "gap", "conv'
    )
    caplog.set_level(logging.WARNING, "trio_transcripts.backfill")
    completeness = Completeness(BackfillQueue(state), Journal(state))
    absence = completeness.start((), (), keep_settled_ms=3_600_000)
    assert absence.carried == ("c-1",), "the whole follow record was kept, the torn one not"
    assert list(completeness.queue.jobs) == ["c-3"]
    said = [r.getMessage() for r in caplog.records]
    assert f"{state / JOURNAL_FILE}:3: unreadable record skipped" in said
    assert f"{state / JOURNAL_FILE}:5: unreadable record skipped" in said
    assert f"{state / QUEUE_FILE}:3: unreadable record skipped" in said
    # Both were rewritten whole: the next start reads them without a word.
    caplog.clear()
    Completeness(BackfillQueue(state), Journal(state)).start((), (), keep_settled_ms=3_600_000)
    assert not [r for r in caplog.records if "unreadable" in r.getMessage()]


def test_the_file_sinks_output_with_a_torn_or_foreign_line_is_read_around_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.lp"
    good = [utterance(i) for i in range(3)]
    lines = [encode(u).encode() for u in good]
    out.write_bytes(
        lines[0] + b"\n" + b"\xff not UTF-8\n" + lines[1] + b"\n" + lines[2] + b"\n" + lines[0][:30]
    )
    caplog.set_level(logging.WARNING, "trio_transcripts.stored")
    rows = read_file(out, None, None)
    assert sorted(r.utterance_id for r in rows) == sorted(u.utterance_id for u in good)
    [said] = [r.getMessage() for r in caplog.records]
    assert said.startswith(f"{out}: 2 unreadable line(s) skipped (first: line 2:")


@pytest.mark.parametrize("marker", [b"garbage", b"-3", b"\xff"])
def test_a_corrupt_acked_marker_replays_the_whole_file_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, marker: bytes
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([utterance(0), utterance(1)])
    [path] = spool.files()
    path.with_suffix(".acked").write_bytes(marker)
    caplog.set_level(logging.ERROR, "trio_transcripts.spool")
    [record] = spool.read(path).records
    assert [u.utterance_id for u in record] == ["utt-0", "utt-1"]
    assert f"{path.with_suffix('.acked')} is unreadable: replaying every record" in caplog.text


def test_a_spool_directory_that_is_a_file_is_named_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("a file where the directory should be")
    config = Config(spool_dir=tmp_path / "spool")
    with pytest.raises(FatalError, match=r"spool directory .*spool \(--spool\) cannot be used"):
        configured_spool(config)


async def test_a_read_only_spool_directory_is_a_clear_fatal_error(
    read_only_dir: Path, tmp_path: Path
) -> None:
    sink = SpoolingSink(FileSink(tmp_path / "out.lp"), Spool(read_only_dir))
    with pytest.raises(FatalError, match=r"spool directory .* \(--spool\) cannot be used: "):
        await sink.open()


async def test_a_read_only_or_missing_state_directory(read_only_dir: Path, tmp_path: Path) -> None:
    def backfiller(state: Path) -> Backfiller:
        client = PostCallClient("http://api", Tokens())  # type: ignore[arg-type]
        return Backfiller(
            Completeness(BackfillQueue(state), Journal(state)),
            client,
            Store().lookup,
            DeadLetters(tmp_path / "dead.jsonl"),
            NoCalls(),
            settings=BackfillSettings(),
        )

    with pytest.raises(FatalError, match=r"state directory .*read-only.* cannot be used: .*30"):
        await backfiller(read_only_dir).run(Store().write, settled)
    missing = tmp_path / "not" / "yet" / "state"
    async with trio.open_nursery() as nursery:
        await nursery.start(backfiller(missing).run, Store().write, settled)
        assert (missing / JOURNAL_FILE).exists(), "made, with its parents"
        nursery.cancel_scope.cancel()


def test_a_second_lock_on_a_directory_is_refused_with_the_holder_and_the_setting(
    tmp_path: Path,
) -> None:
    first = DirectoryLock(tmp_path, "state directory", "--state-dir")
    first.acquire()
    try:
        with pytest.raises(DirectoryInUse, match=r"in use by another worker \(pid \d+\)"):
            DirectoryLock(tmp_path, "state directory", "--state-dir").acquire()
    finally:
        first.release()
    again = DirectoryLock(tmp_path, "state directory", "--state-dir")
    again.acquire()  # released: free again
    again.release()


async def test_two_runs_from_one_directory_the_second_is_refused_and_the_first_goes_on(
    tmp_path: Path,
) -> None:
    sim = Simulator(SimConfig(calls=1, utterances=2, rate=5))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        env = simulator_env(info)
        first = await start_worker_process(nursery, env=env, cwd=tmp_path)
        lock = tmp_path / "state" / ".lock"
        with trio.fail_after(30):
            await until(lambda: lock.exists() and lock.read_text().strip())
            second = await start_worker_process(nursery, env=env, cwd=tmp_path)
            refused = (await read_until_exit(second)).decode()
        assert second.returncode == 1, refused[-2000:]
        assert f"the state directory {tmp_path / 'state'} is in use by another worker" in refused
        assert f"(pid {first.pid})" in refused and "--state-dir" in refused
        assert first.returncode is None, "the first goes on"
        first.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            await read_until_exit(first)
        nursery.cancel_scope.cancel()
    assert first.returncode == 0
