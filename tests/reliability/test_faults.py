"""The fault suite: the pipeline under each failure, against ground truth.

Every scenario asserts the promise: each utterance the simulator finalized is in InfluxDB
exactly once with its exact text and millisecond, or in the dead-letter file with a reason;
the ring buffer never exceeds its capacity (memory stays bounded); the account matches what a
query returns. Unclosed sockets fail the run (warnings are errors). Run alone with
``pytest tests/reliability``.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
import signal
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest
import trio

from trio_transcripts.assemble import assemble, configured_sink
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.model import Utterance
from trio_transcripts.retry import Backoff
from trio_transcripts.sinks import Sink, WriteResult
from trio_transcripts.sinks.deadletter import read_dead_letters
from trio_transcripts.spool import Spool
from trio_transcripts.testing.harness import run_until_accounted
from trio_transcripts.testing.influxd import Influxd, free_port, start_influxd
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.worker import Worker

from ..conftest import start_influxd_or_skip
from ..influxfront import Fault, InfluxFront
from ..pipeline import (
    pipeline_config,
    read_until_exit,
    run_to_completion,
    simulator_env,
    start_worker_process,
)

OUTAGE_S = float(os.environ.get("RELIABILITY_OUTAGE_S", "3"))


def assert_accounted(
    sim: Simulator, worker: Worker, influxd: Influxd, database: str, dead_letter: Path
) -> None:
    rows = influxd.query("SELECT * FROM transcriptions", db=database)
    assert len(rows) == worker.account.persisted, "the account matches the database"
    finals = {(str(r["conversationId"]), str(r["utteranceId"])): r for r in rows if r["final"]}
    assert len(finals) == sum(1 for r in rows if r["final"]), "no final stored twice"
    letters = {
        (d["utterance"]["conversation_id"], d["utterance"]["utterance_id"]): d
        for d in read_dead_letters(dead_letter)
        if d["kind"] == "utterance"
    }
    for truth in sim.truth:
        key = (str(truth["conversationId"]), str(truth["utteranceId"]))
        if key in finals:
            row = finals[key]
            assert row["text"] == truth["text"] and row["speaker"] == truth["speaker"]
            assert row["time"] // NS_PER_MS == truth["startMs"]  # type: ignore[operator]
        else:
            assert key in letters and letters[key]["reason"], f"{key} is nowhere"
    snapshot = worker.snapshot()
    assert snapshot.ring_peak <= snapshot.ring_capacity


SOURCE_FAULTS = {
    "drop-without-close": (SimConfig(calls=4, utterances=8, faults=Faults(drop_every=9)), {}),
    "socket-closing": (
        SimConfig(
            calls=4,
            utterances=8,
            rate=300,
            faults=Faults(socket_closing_after=20, socket_closing_grace_s=0.5),
        ),
        {},
    ),
    "silent-socket": (
        SimConfig(calls=1, utterances=4, rate=8, faults=Faults(silent=True)),
        {"heartbeat_timeout_s": 0.1},
    ),
    "handshake-401": (SimConfig(calls=3, utterances=6, faults=Faults(handshake_401=2)), {}),
    "token-expiring": (
        SimConfig(
            calls=3, utterances=10, rate=60, token_lifetime_s=2, faults=Faults(drop_every=25)
        ),
        {},
    ),
    "malformed-oversized-duplicates": (
        SimConfig(
            calls=4,
            utterances=8,
            faults=Faults(malformed_every=3, oversized_every=11, duplicate_finals=True),
        ),
        {},
    ),
}


@pytest.mark.parametrize(
    "name",
    list(SOURCE_FAULTS),
)
async def test_source_fault(name: str, influxd: Influxd, database: str, tmp_path: Path) -> None:
    sim_config, changes = SOURCE_FAULTS[name]
    worker, sim = await run_to_completion(sim_config, tmp_path, influxd, database, **changes)
    assert_accounted(sim, worker, influxd, database, tmp_path / "dead.jsonl")
    assert worker.account.persisted >= len(sim.truth) > 0
    assert worker.account.dead_lettered == 0
    gc.collect()  # a socket left open (a rejected handshake's) would fail the test here


class SlowSink:
    """A store slower than the stream."""

    def __init__(self, inner: Sink, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        await trio.sleep(self.delay_s)
        return await self.inner.write(utterances)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def describe(self) -> str:
        return "slow " + self.inner.describe()


async def test_slow_sink_pauses_the_reader_and_loses_nothing(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    sim = Simulator(SimConfig(calls=4, utterances=10))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = pipeline_config(
            info, tmp_path, influxd, database, buffer_capacity=20, batch_size=5
        )
        worker = assemble(config, store=SlowSink(configured_sink(config), 0.02))
        with trio.fail_after(90):
            await run_until_accounted(worker, sim)
        nursery.cancel_scope.cancel()
    assert worker.snapshot().ring_pauses >= 1, "the reader paused at the high-water mark"
    assert_accounted(sim, worker, influxd, database, tmp_path / "dead.jsonl")
    assert worker.account.dead_lettered == 0


async def run_through_an_outage(
    worker: Worker, sim: Simulator, server: Influxd, root: Path
) -> Influxd:
    """Run ``worker`` to completion while influxd is killed (-9) mid-stream for OUTAGE_S
    seconds and restarted on the same port and data; return the restarted server."""
    port = int(server.url.rsplit(":", 1)[1])
    async with trio.open_nursery() as pipeline:
        pipeline.start_soon(run_until_accounted, worker, sim)
        while worker.account.persisted < 20:
            await worker.wait_progress()
        server.kill()
        await trio.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
        server = await trio.to_thread.run_sync(partial(start_influxd, root, http_port=port))
    return server


async def test_influxdb_killed_mid_stream_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    server = start_influxd_or_skip(tmp_path / "db1", http_port=port)
    sim = Simulator(SimConfig(calls=3, utterances=20, rate=150))
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            config = pipeline_config(info, tmp_path, server, "outage", buffer_capacity=40)
            config = dataclasses.replace(
                config, influx=dataclasses.replace(config.influx, backoff=Backoff(0.05, 0.5))
            )  # type: ignore[type-var]
            worker = assemble(config)
            server = await run_through_an_outage(worker, sim, server, tmp_path / "db1")
            nursery.cancel_scope.cancel()
        assert worker.sink.stats.retries >= 1  # type: ignore[attr-defined]
        assert worker.snapshot().ring_pauses >= 1, "backpressure reached the reader"
        assert_accounted(sim, worker, server, "outage", tmp_path / "dead.jsonl")
        assert worker.account.dead_lettered == 0
    finally:
        server.stop()


async def test_429_and_503_bursts_from_a_2x_endpoint(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    influxd.query(f'CREATE DATABASE "{database}"')
    with InfluxFront(influxd.url, buckets={database}) as v2:
        v2.faults.extend(
            [
                Fault(429, {"Retry-After": "1"}),
                Fault(503),
                Fault(503),
                Fault(503, {"Retry-After": "1"}),
                Fault(429),
            ]
        )
        influx = InfluxSettings(
            url=v2.url, org="acme", bucket=database, token="t0ken", backoff=Backoff(0.05, 0.2)
        )
        worker, sim = await run_to_completion(
            SimConfig(calls=3, utterances=8, rate=200), tmp_path, influxd, database, influx=influx
        )
    assert worker.sink.stats.retries == 5  # type: ignore[attr-defined]
    assert_accounted(sim, worker, influxd, database, tmp_path / "dead.jsonl")


@pytest.mark.parametrize(
    ("signals", "shutdown_timeout"),
    [
        pytest.param((signal.SIGTERM,), "1", id="sigterm-waits-out-the-deadline"),
        # A deadline no run reaches: only the second SIGINT can end the wait in time.
        pytest.param((signal.SIGINT, signal.SIGINT), "3600", id="second-sigint-skips-the-wait"),
    ],
)
async def test_stopped_during_a_database_outage_dead_letters_the_rest(
    tmp_path: Path, signals: tuple[signal.Signals, ...], shutdown_timeout: str
) -> None:
    server = start_influxd_or_skip(tmp_path / "db")
    sim = Simulator(SimConfig(calls=3, utterances=60, rate=100))
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            env = simulator_env(info) | {"INFLUX_URL": server.url, "INFLUX_DATABASE": "sigterm"}
            process = await start_worker_process(
                nursery,
                "--shutdown-timeout",
                shutdown_timeout,
                "--dead-letter",
                str(tmp_path / "dead.jsonl"),
                "--batch-wait-ms",
                "20",
                "--status-interval",
                "0.2",
                env=env,
                cwd=tmp_path,
            )
            output = b""
            with trio.fail_after(60):
                # The worker's own status lines, as they come: at least 10 persisted.
                while not re.search(rb"status: .* (\d\d+) persisted", output):
                    output += await process.stderr.receive_some(65536)
                server.kill()  # the database goes away...
                while b"InfluxDB write of" not in output:  # ...writes are failing...
                    output += await process.stderr.receive_some(65536)
                sent = list(sim.truth)
                for signum in signals:  # ...and then we are asked to stop
                    process.send_signal(signum)
                    while b"shutting down: no more frames" not in output:
                        output += await process.stderr.receive_some(65536)
                output += await read_until_exit(process)
            nursery.cancel_scope.cancel()
        assert process.returncode == 0, output.decode()[-2000:]
        if len(signals) == 2:
            assert b"second SIGINT: not waiting for the sink" in output
        server = start_influxd(tmp_path / "db", http_port=int(server.url.rsplit(":", 1)[1]))
        stored = {
            (r["conversationId"], r["utteranceId"])
            for r in server.query("SELECT * FROM transcriptions WHERE final = true", db="sigterm")
        }
        letters = {
            (d["utterance"]["conversation_id"], d["utterance"]["utterance_id"])
            for d in read_dead_letters(tmp_path / "dead.jsonl")
            if d["kind"] == "utterance"
        }
        assert letters, output.decode()[-3000:]
        for truth in sent:
            key = (truth["conversationId"], truth["utteranceId"])
            assert key in stored or key in letters, f"{key} is nowhere"
    finally:
        server.stop()


async def test_outage_with_a_spool_keeps_reading_then_replays(tmp_path: Path) -> None:
    port = free_port()
    server = start_influxd_or_skip(tmp_path / "db", http_port=port)
    sim = Simulator(SimConfig(calls=3, utterances=20, rate=150))
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            config = pipeline_config(
                info,
                tmp_path,
                server,
                "spooled",
                buffer_capacity=40,
                spool_dir=tmp_path / "spool",
                spool_after_s=0.2,
            )
            worker = assemble(config)
            server = await run_through_an_outage(worker, sim, server, tmp_path / "db")
            nursery.cancel_scope.cancel()
        account = worker.account
        assert account.spooled > 0 and account.replayed == account.spooled
        assert worker.snapshot().ring_pauses == 0, "the reader kept reading: disk took it"
        assert list((tmp_path / "spool").glob("spool-*.log")) == []
        assert_accounted(sim, worker, server, "spooled", tmp_path / "dead.jsonl")
        assert account.dead_lettered == 0
    finally:
        server.stop()


async def test_kill_9_during_an_outage_then_restart_replays_the_spool(tmp_path: Path) -> None:
    port = free_port()
    server = start_influxd_or_skip(tmp_path / "db", http_port=port)
    spool_dir = tmp_path / "spool"
    sim = Simulator(SimConfig(calls=3, utterances=60, rate=100))
    arguments = [
        "--spool",
        str(spool_dir),
        "--spool-after",
        "0.2",
        "--status-interval",
        "0.2",
        "--batch-wait-ms",
        "20",
        "--dead-letter",
        str(tmp_path / "dead.jsonl"),
    ]
    try:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(sim.run)
            env = simulator_env(info) | {"INFLUX_URL": server.url, "INFLUX_DATABASE": "crash"}
            run = partial(start_worker_process, nursery, *arguments, env=env, cwd=tmp_path)
            first = await run()
            output = b""
            with trio.fail_after(60):
                while not re.search(rb"status: .* \d\d+ persisted", output):
                    output += await first.stderr.receive_some(65536)
                server.kill()
                while not re.search(rb"status: .* [1-9]\d+ spooled", output):
                    output += await first.stderr.receive_some(65536)
                first.kill()  # kill -9 mid-outage
                await first.wait()
            survived = Spool(spool_dir)
            spooled = {
                u.key
                for path in survived.files()
                for record in survived.read(path).records
                for u in record
            }
            assert spooled, "what was spooled survived the crash"
            server = await trio.to_thread.run_sync(
                partial(start_influxd, tmp_path / "db", http_port=port)
            )
            second = await run()
            output = b""
            with trio.fail_after(60):
                while b"and removed" not in output or Spool(spool_dir).files():
                    output += await second.stderr.receive_some(65536)
                second.send_signal(signal.SIGTERM)
                await second.wait()
            nursery.cancel_scope.cancel()
        rows = server.query("SELECT * FROM transcriptions WHERE final = true", db="crash")
        stored = [(str(r["conversationId"]), str(r["utteranceId"])) for r in rows]
        assert len(stored) == len(set(stored)), "replays after a crash add no duplicates"
        assert spooled <= set(stored), "everything spooled before kill -9 reached InfluxDB"
    finally:
        server.stop()
