"""The backfill end to end: the simulator as the platform (no redelivery, post-call
transcripts) -> the worker -> a real InfluxDB, compared with the simulator's truth."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import trio

from tests.pipeline import pipeline_config
from trio_transcripts.assemble import assemble
from trio_transcripts.backfill import Backfiller
from trio_transcripts.gaprecords import QUEUE_FILE
from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.sources.notifications import NotificationsSource
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.worker import Worker

# Short calls in real time: the platform's frames go out when their moment comes, so the
# time of a gap and the time of what it swallowed line up, as they do on the platform.
LIVE_CALLS = dict(speech_time=True, call_spacing_s=0.4, transcript_delay_s=0.3)
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


async def run_until_filled(worker: Worker, sim: Simulator) -> None:
    """Run ``worker`` until the calls are over, ended for it, and every gap is filled; then
    stop it in order."""
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        with trio.fail_after(90):
            await filled(worker, sim)
        worker.stop()
    gc.collect()  # the refused handshakes' sockets, while this test's filters apply


async def filled(worker: Worker, sim: Simulator) -> None:
    source, backfill = worker.source, worker.backfill
    assert isinstance(source, NotificationsSource) and isinstance(backfill, Backfiller)
    await sim.done.wait()
    await source.wait_for(lambda _: not source.conversations())
    await backfill.wait_empty()
    while not worker.idle():
        await worker.wait_progress()


# trio-websocket leaves the client socket of a refused handshake open (the outage fault
# refuses them; ../shared/trio-notes.md, "Observed leak").
LEAKS_REFUSED_SOCKETS = (
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:unclosed <socket:ResourceWarning"),
)


@LEAKS_REFUSED_SOCKETS[0]
@LEAKS_REFUSED_SOCKETS[1]
async def test_every_utterance_is_stored_once_live_or_backfilled(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True, drop_every=5, outage_s=1.0)
    sim = Simulator(SimConfig(calls=4, utterances=4, faults=faults, **LIVE_CALLS))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **QUICK))
        await run_until_filled(worker, sim)
        nursery.cancel_scope.cancel()
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


@LEAKS_REFUSED_SOCKETS[0]
@LEAKS_REFUSED_SOCKETS[1]
async def test_a_transcript_not_yet_there_is_asked_for_again_then_written(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True, drop_every=4, outage_s=1.0)
    config = SimConfig(
        calls=2, utterances=3, faults=faults, **{**LIVE_CALLS, "transcript_delay_s": 1.5}
    )  # type: ignore[arg-type]
    sim = Simulator(config)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **QUICK))
        await run_until_filled(worker, sim)
        nursery.cancel_scope.cancel()
    backfill = worker.backfill
    assert backfill is not None and backfill.counts.retries >= 1, "a 404 was retried"
    assert_each_truth_stored_once(sim, stored_finals(influxd, database))
