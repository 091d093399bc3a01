"""The whole pipeline: simulator -> worker -> real InfluxDB 1.6, compared with ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import trio
import trio.testing

from trio_transcripts.assemble import assemble
from trio_transcripts.auth import Credentials, TokenManager
from trio_transcripts.config import WorkerSettings
from trio_transcripts.model import Fragment, Utterance
from trio_transcripts.sinks import WriteResult
from trio_transcripts.sinks.deadletter import DeadLetters, read_dead_letters
from trio_transcripts.sources import Emit
from trio_transcripts.testing.harness import run_until_accounted
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import FRAGMENT_PATH, Faults, SimConfig, Simulator
from trio_transcripts.worker import Worker

from .pipeline import assert_matches_truth, finals_in, pipeline_config, run_to_completion
from .test_account import ListSource


async def test_notifications_to_influxdb_exactly_once(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(drop_every=25, duplicate_finals=True)
    worker, sim = await run_to_completion(
        SimConfig(calls=4, utterances=6, faults=faults), tmp_path, influxd, database
    )
    assert_matches_truth(sim, influxd, database)
    account = worker.account
    assert account.persisted == len(sim.truth) and account.dead_lettered == 0
    assert account.duplicates >= len(sim.truth), "every final was re-delivered once"
    assert account.gaps >= 1 and sim.stats.drops >= 1


async def test_fragment_stream_to_influxdb(influxd: Influxd, database: str, tmp_path: Path) -> None:
    sim_config = SimConfig(calls=3, utterances=5, source="fragments")
    sim = Simulator(sim_config)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = pipeline_config(
            info,
            tmp_path,
            influxd,
            database,
            conversation_ids=(),
            stream_url=f"ws://127.0.0.1:{sim.port}{FRAGMENT_PATH}",
        )
        worker = assemble(config)
        with trio.fail_after(60):
            await run_until_accounted(worker, sim)
        nursery.cancel_scope.cancel()
    assert_matches_truth(sim, influxd, database)


async def test_malformed_frames_go_to_the_dead_letter_file(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(malformed_every=5, oversized_every=7)
    worker, sim = await run_to_completion(
        SimConfig(calls=2, utterances=5, faults=faults), tmp_path, influxd, database
    )
    assert_matches_truth(sim, influxd, database)
    letters = read_dead_letters(tmp_path / "dead.jsonl")
    assert worker.account.malformed == len(letters) > 0
    assert all(r["kind"] == "frame" and r["reason"] and r["frame"] for r in letters)
    assert any(r["size"] > 1 << 20 for r in letters), "the oversized frame is accounted for"


async def test_cancellation_by_the_host_still_drains(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    sim = Simulator(SimConfig(calls=3, utterances=20, rate=300))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database))
        async with trio.open_nursery() as host:
            await host.start(worker.run)
            # Mid-stream, at a moment some utterance is in progress (which one depends on
            # how many frames came before the write that woke us).
            while worker.account.persisted < 5 or not worker.snapshot().pending:
                await worker.wait_progress()
            host.cancel_scope.cancel()  # the host application goes away mid-stream
        nursery.cancel_scope.cancel()
    account = worker.account
    assert account.partials >= 1, "utterances in progress were flushed as partials"
    assert account.finals + account.partials == account.persisted + account.dead_lettered
    rows = influxd.query("SELECT * FROM transcriptions", db=database)
    assert len(rows) == account.persisted
    assert sum(1 for r in rows if r["final"] is False) == account.partials
    sent = {(str(t["conversationId"]), str(t["utteranceId"])) for t in sim.truth}
    stored = set(finals_in(influxd, database))
    assert stored <= sent and len(stored) == account.finals


async def test_conversations_added_and_removed_at_run_time(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    sim = Simulator(SimConfig(calls=3, utterances=4))
    first, *others = [c.conversation_id for c in sim.calls]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(
            pipeline_config(info, tmp_path, influxd, database, conversation_ids=(first,))
        )
        async with trio.open_nursery() as host:
            await host.start(worker.run)
            for conversation in others:
                worker.add_conversation(conversation)
            worker.remove_conversation("never-followed")  # harmless
            with trio.fail_after(60):
                await sim.done.wait()
                while not (worker.idle() and worker.account.persisted >= len(sim.truth)):
                    await worker.wait_progress()
            worker.stop()
        nursery.cancel_scope.cancel()
    assert_matches_truth(sim, influxd, database)
    assert {k[0] for k in finals_in(influxd, database)} == {first, *others}


class TracedSource(ListSource):
    """Notes the task the worker runs it in: the reader."""

    task: trio.lowlevel.Task | None = None

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.task = trio.lowlevel.current_task()
        await super().run(emit, task_status=task_status)


class ReaderSteps(trio.abc.Instrument):
    """Counts the scheduler steps of the task that runs the source, after its first."""

    def __init__(self, source: TracedSource) -> None:
        self.steps = 0
        self.source = source

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.source.task:
            self.steps += 1


async def test_the_reader_visits_the_scheduler_once_a_frame_and_the_writer_keeps_up(
    tmp_path: Path,
) -> None:
    # Three fragments an utterance, as the Genesys source delivers them (two interims, then
    # the final), all readable at once: a socket whose queue never runs dry.
    frames = [
        Fragment("c", f"u{i // 3}", "agent", f"t{i}", 0.9, 1_000 * i, 1_000 * i + 1, i % 3 == 2)
        for i in range(300)
    ]
    store = CountingSink()
    source = TracedSource(frames)
    worker = Worker(
        source=source,
        sink=store,
        dead_letters=DeadLetters(tmp_path / "dead.jsonl"),
        settings=WorkerSettings(batch_size=10, batch_wait_ms=0),
    )
    steps = ReaderSteps(source)
    trio.lowlevel.add_instrument(steps)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            while worker.account.persisted < 100:
                await worker.wait_progress()
            worker.stop()
    finally:
        trio.lowlevel.remove_instrument(steps)
    # One step a frame (the checkpoint after it), plus the start and the final wait.
    assert 300 <= steps.steps <= 303
    # The writer had turns while the reader read: many small batches, not one at the end.
    assert len(store.batches) >= 10


class CountingSink:
    def __init__(self) -> None:
        self.batches: list[int] = []

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await trio.lowlevel.checkpoint()
        self.batches.append(len(utterances))
        return WriteResult.all_acknowledged(utterances)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> str:
        return "a counting sink"


class GatedSink(CountingSink):
    """Ready when the test says: its ``open`` returns with no checkpoint after the wait."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = trio.Event()

    async def open(self) -> None:
        await self.ready.wait()


async def test_a_stop_in_the_sinks_last_turn_of_startup_ends_the_run_cleanly(
    tmp_path: Path,
) -> None:
    sink = GatedSink()
    worker = Worker(
        source=ListSource([]), sink=sink, dead_letters=DeadLetters(tmp_path / "dead.jsonl")
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker.run)
        await trio.testing.wait_all_tasks_blocked()
        sink.ready.set()  # open() is given its answer...
        worker.stop()  # ...and a signal's stop() lands in the same scheduler turn
    assert worker.lifecycle.stage.value == "closed" and worker.fatal is None
    assert worker.account.frames == 0, "stopped before reading"


async def test_stopped_before_it_starts_a_worker_waiting_for_a_token_returns_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    refused = httpx.MockTransport(lambda request: httpx.Response(503))
    tokens = TokenManager(Credentials("id", "secret", "http://login"), transport=refused)
    worker = Worker(
        source=ListSource([]),
        sink=CountingSink(),
        dead_letters=DeadLetters(tmp_path / "dead.jsonl"),
        tokens=tokens,
    )
    worker.stop()
    with trio.fail_after(1):  # mock time: the refresher's backoff would pass it
        await worker.run()
    assert worker.lifecycle.stage.value == "closed"
