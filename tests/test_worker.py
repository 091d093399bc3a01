"""The whole pipeline: simulator -> worker -> real InfluxDB 1.6, compared with ground truth."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from trio_transcripts.assemble import assemble
from trio_transcripts.sinks.deadletter import read_dead_letters
from trio_transcripts.testing.harness import run_until_accounted
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import FRAGMENT_PATH, Faults, SimConfig, Simulator

from .pipeline import assert_matches_truth, finals_in, pipeline_config, run_to_completion


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
            while worker.account.persisted < 5:
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
