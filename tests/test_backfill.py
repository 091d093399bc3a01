"""The backfill end to end: the simulator as the platform (no redelivery, post-call
transcripts) -> the worker -> a real InfluxDB, compared with the simulator's truth."""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import pytest
import trio

from tests.pipeline import (
    pipeline_config,
    simulator_config,
)
from trio_transcripts import backfill_cmd
from trio_transcripts.assemble import assemble
from trio_transcripts.backfill import Backfiller
from trio_transcripts.gaprecords import QUEUE_FILE, now_ms
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.sinks.file import FileSink
from trio_transcripts.sources.notifications import NotificationsSource
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.wire.instants import iso_of
from trio_transcripts.worker import Worker

from .waiting import until

# Short calls in real time: the platform's frames go out when their moment comes, so the
# time of a gap and the time of what it swallowed line up, as they do on the platform.
LIVE_CALLS = dict(
    speech_time=True, call_spacing_s=0.4, transcript_delay_s=0.3, batch_transcripts=0.3
)
# The platform's 5-minute keepalive, scaled down: longer than a pause within a call plus an
# outage, shorter than a test's patience after a call whose SESSION_ENDED was lost.
QUICK = dict(keepalive_s=6.0, silence_margin_s=2.0, backfill_retry_s=0.2)


def stored_finals(influxd: Influxd, database: str) -> list[dict[str, object]]:
    return influxd.query("SELECT * FROM transcriptions WHERE final = true", db=database)


def assert_each_truth_stored_once(sim: Simulator, rows: list[dict[str, object]]) -> None:
    """Every utterance of the truth file stored exactly once, live or backfilled, with its
    exact text and start millisecond; nothing else stored as final."""
    keyed: dict[tuple[str, int, str], list[dict[str, object]]] = {}
    for row in rows:
        start = int(row["time"]) // NS_PER_MS  # type: ignore[call-overload]
        keyed.setdefault((str(row["conversationId"]), start, str(row["speaker"])), []).append(row)
    assert sum(len(v) for v in keyed.values()) == len(sim.truth)
    for truth in sim.truth:
        key = (str(truth["conversationId"]), int(truth["startMs"]), str(truth["speaker"]))  # type: ignore[call-overload]
        (row,) = keyed[key]
        assert row["text"] == truth["text"]


async def run_backfilled(sim: Simulator, tmp_path: Path, influxd: Influxd, database: str) -> Worker:
    """Run ``sim`` and a worker with a quick backfill until every gap is filled."""
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **QUICK))
        await run_until_filled(worker, sim)
        nursery.cancel_scope.cancel()
    return worker


async def run_until_filled(worker: Worker, sim: Simulator) -> None:
    """Run ``worker`` until the calls are over, ended for it, and every gap is filled; then
    stop it in order."""
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        with trio.fail_after(90):
            await filled(worker, sim)
        worker.stop()
    gc.collect()  # a socket left open (a refused handshake's) would fail the test here


async def filled(worker: Worker, sim: Simulator) -> None:
    source, backfill = worker.source, worker.backfill
    assert isinstance(source, NotificationsSource) and isinstance(backfill, Backfiller)
    await sim.done.wait()
    await until(lambda: not source.conversations() and not backfill.queue.jobs)
    while not worker.idle():
        await worker.wait_progress()


async def test_every_utterance_is_stored_once_live_or_backfilled(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True, drop_every=5, outage_s=1.0)
    sim = Simulator(SimConfig(calls=4, utterances=4, faults=faults, **LIVE_CALLS))  # type: ignore[arg-type]
    worker = await run_backfilled(sim, tmp_path, influxd, database)
    rows = stored_finals(influxd, database)
    assert_each_truth_stored_once(sim, rows)
    lost = sum(1 for t in sim.truth if t.get("lost"))
    backfilled = [r for r in rows if r["origin"] == "backfill"]
    assert lost >= 1 and len(backfilled) >= lost, "what was lost came back from the transcript"
    account = worker.account
    assert account.backfilled == len(backfilled) and account.gaps >= 1
    assert account.persisted >= len(rows)
    assert sim.api.postcall.documents_served >= 1
    queue = (tmp_path / "state" / QUEUE_FILE).read_text().splitlines()
    assert any(json.loads(line)["type"] == "done" for line in queue)


async def test_a_transcript_not_yet_there_is_asked_for_again_then_written(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True, drop_every=4, outage_s=1.0)
    config = SimConfig(
        calls=2, utterances=3, faults=faults, **{**LIVE_CALLS, "transcript_delay_s": 1.5}
    )  # type: ignore[arg-type]
    sim = Simulator(config)
    worker = await run_backfilled(sim, tmp_path, influxd, database)
    backfill = worker.backfill
    assert backfill is not None and backfill.counts.retries >= 1, "a 404 was retried"
    assert_each_truth_stored_once(sim, stored_finals(influxd, database))


async def test_an_expired_url_is_asked_for_again(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True, drop_every=4, outage_s=1.0, expired_urls=2)
    sim = Simulator(SimConfig(calls=1, utterances=4, faults=faults, **LIVE_CALLS))  # type: ignore[arg-type]
    worker = await run_backfilled(sim, tmp_path, influxd, database)
    assert worker.backfill is not None and worker.backfill.counts.expired_urls == 2
    assert sim.api.postcall.expired_answers == 2 and sim.api.postcall.urls_issued == 3
    assert_each_truth_stored_once(sim, stored_finals(influxd, database))


async def test_a_missing_permission_turns_the_backfill_off_with_one_line(
    influxd: Influxd, database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = Simulator(SimConfig(calls=1, utterances=2, faults=Faults(deny_transcripts=True)))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **QUICK))
        async with trio.open_nursery() as running:
            await running.start(worker.run)
            assert worker.backfill is not None
            with trio.fail_after(30):
                await until(lambda: worker.snapshot().backfill != "probing")
                await sim.done.wait()
                while worker.account.persisted < len(sim.truth) or not worker.idle():
                    await worker.wait_progress()
            worker.stop()
        nursery.cancel_scope.cancel()
    assert worker.snapshot().backfill == "refused"
    lines = [r for r in caplog.records if "backfill off" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "ERROR"
    assert "recording:recording:view" in lines[0].getMessage()
    assert worker.account.persisted == len(sim.truth) == 2, "the live path goes on"


# --- the backfill command ---------------------------------------------------------------


def command_args(*ids: str, **options: object) -> argparse.Namespace:
    values = {"conversation_ids": list(ids), "queue": None, "since": None, "until": None}
    return argparse.Namespace(**{**values, **options})


async def calls_nobody_heard(**config: object) -> tuple[Simulator, dict[str, object]]:
    """A simulator whose calls all went out while no worker listened (all lost)."""
    sim = Simulator(
        SimConfig(
            calls=3,
            utterances=3,
            start_after_sockets=0,
            transcript_delay_s=0,
            faults=Faults(no_redelivery=True),
            **config,  # type: ignore[arg-type]
        )
    )
    return sim, {}


async def test_the_command_stores_unheard_calls_and_a_repeat_writes_nothing(
    influxd: Influxd, database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _ = await calls_nobody_heard()
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        await sim.done.wait()
        config = pipeline_config(info, tmp_path, influxd, database)
        ids = [c.conversation_id for c in sim.calls]
        assert await backfill_cmd.backfill(config, command_args(*ids)) == 0
        first = capsys.readouterr().err
        assert await backfill_cmd.backfill(config, command_args(*ids)) == 0
        second = capsys.readouterr().err
        nursery.cancel_scope.cancel()
    assert all(t.get("lost") for t in sim.truth) and len(sim.truth) == 9
    assert_each_truth_stored_once(sim, stored_finals(influxd, database))
    assert "[3/3]" in first and "9 utterance(s) written" in first
    assert "0 utterance(s) written" in second and "9 backfilled before" in second


async def test_the_command_finds_a_queues_calls_through_the_details_query(
    influxd: Influxd, database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim, _ = await calls_nobody_heard(queue_id="q-1")
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        await sim.done.wait()
        config = pipeline_config(info, tmp_path, influxd, database)
        # The simulator's calls start a second apart from now on: the window reaches past them.
        args = command_args(queue="q-1", since="1h", until=iso_of(now_ms() + 3_600_000))
        assert await backfill_cmd.backfill(config, args) == 0
        nursery.cancel_scope.cancel()
    assert "queue q-1: 3 of 3 call(s)" in capsys.readouterr().err
    assert_each_truth_stored_once(sim, stored_finals(influxd, database))


async def until_sent(sim: Simulator, more: int) -> None:
    """Let the calls go on unheard until ``more`` finals went out (or were lost)."""
    target = len(sim.truth) + more
    while len(sim.truth) < target and not sim.done.is_set():  # noqa: ASYNC110 - paced by time
        await trio.sleep(0.1)


async def stored_count(influxd: Influxd, database: str, count: int) -> None:
    """Poll the database until ``count`` finals are in it (the writer is another process)."""
    while True:
        try:
            if len(stored_finals(influxd, database)) >= count:
                return
        except RuntimeError as exc:  # Influxd.query: the worker has not created it yet
            if "database not found" not in str(exc):
                raise
        await trio.sleep(0.2)


def test_no_backfill_where_the_store_cannot_be_read_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    info = {"login_url": "http://sim", "api_url": "http://sim", "conversation_ids": ["c"]}
    v3 = InfluxSettings(url="http://db", database="d", token="t", api_version="v3")
    worker = assemble(simulator_config(info, tmp_path, influx=v3))
    assert worker.backfill is None
    assert any("reading InfluxDB 3.x back" in r.getMessage() for r in caplog.records)
    assert assemble(simulator_config(info, tmp_path)).backfill is not None, "the file: yes"
    assert assemble(simulator_config(info, tmp_path, backfill=False)).backfill is None
    own = FileSink(tmp_path / "theirs.lp")  # a caller's own store: not read back
    assert assemble(simulator_config(info, tmp_path), store=own).backfill is None
