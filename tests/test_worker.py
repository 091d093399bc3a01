"""The whole pipeline: simulator -> worker -> real InfluxDB 1.6, compared with ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
import trio.testing

from trio_transcripts.cli import run_demo_worker
from trio_transcripts.config import Config
from trio_transcripts.influxd import Influxd
from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.retry import Backoff
from trio_transcripts.simulator.server import FRAGMENT_PATH, Faults, SimConfig, Simulator
from trio_transcripts.sinks.deadletter import read_dead_letters
from trio_transcripts.sinks.influx import InfluxSettings
from trio_transcripts.worker import Worker


def pipeline_config(
    info: dict[str, object], tmp_path: Path, influxd: Influxd, database: str, **changes: object
) -> Config:
    config = Config(
        client_id="sim-client",
        client_secret="sim-secret",
        login_url=str(info["login_url"]),
        api_url=str(info["api_url"]),
        conversation_ids=tuple(info["conversation_ids"]),  # type: ignore[call-overload]
        influx=InfluxSettings(url=influxd.url, database=database, backoff=Backoff(0.01, 0.2)),
        dead_letter_path=tmp_path / "dead.jsonl",
        output_path=tmp_path / "out.lp",
        batch_wait_ms=20,
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def finals_in(influxd: Influxd, database: str) -> dict[tuple[str, str], dict[str, object]]:
    rows = influxd.query("SELECT * FROM transcriptions WHERE final = true", db=database)
    keyed = {(str(r["conversationId"]), str(r["utteranceId"])): r for r in rows}
    assert len(keyed) == len(rows), "no utterance is stored twice"
    return keyed


def assert_matches_truth(sim: Simulator, influxd: Influxd, database: str) -> None:
    stored = finals_in(influxd, database)
    assert len(stored) == len(sim.truth) > 0
    for truth in sim.truth:
        row = stored[(str(truth["conversationId"]), str(truth["utteranceId"]))]
        assert row["text"] == truth["text"]
        assert row["speaker"] == truth["speaker"]
        assert row["confidence"] == truth["confidence"]
        assert row["time"] // NS_PER_MS == truth["startMs"]  # type: ignore[operator]
        assert row["duration_ms"] == truth["endMs"] - truth["startMs"]  # type: ignore[operator]


async def run_to_completion(
    sim_config: SimConfig, tmp_path: Path, influxd: Influxd, database: str, **changes: object
) -> tuple[Worker, Simulator]:
    sim = Simulator(sim_config)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = Worker(pipeline_config(info, tmp_path, influxd, database, **changes))
        with trio.fail_after(60):
            await run_demo_worker(worker, sim)
        nursery.cancel_scope.cancel()
    return worker, sim


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
        worker = Worker(config)
        with trio.fail_after(60):
            await run_demo_worker(worker, sim)
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
        worker = Worker(pipeline_config(info, tmp_path, influxd, database))
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
