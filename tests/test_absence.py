"""Complete even where the worker was not (issue 19): a call joined mid-way, a worker killed
in its first seconds, a queue's calls across a clean restart, and the catch-up without its
permission. The simulator as the platform (calls start before any socket, no redelivery,
post-call transcripts and analytics), a real InfluxDB, compared with the simulator's truth."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

from tests.pipeline import pipeline_config, read_until_exit, simulator_env, start_worker_process
from tests.test_backfill import (
    LIVE_CALLS,
    QUICK,
    assert_each_truth_stored_once,
    run_until_filled,
    stored_count,
    stored_finals,
    until_sent,
)
from trio_transcripts.absence import sort
from trio_transcripts.assemble import assemble
from trio_transcripts.backfill import Backfiller
from trio_transcripts.journal import JOURNAL_FILE
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.wire.analytics import CallRecord
from trio_transcripts.worker import Worker

from .waiting import until

# Calls under way before any worker listens, as real calls are.
UNDER_WAY = dict(LIVE_CALLS, start_after_sockets=0)


def backfilled(rows: list[dict[str, object]]) -> int:
    return sum(1 for r in rows if r["origin"] == "backfill")


async def test_a_worker_started_mid_call_backfills_the_head(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    faults = Faults(no_redelivery=True)
    sim = Simulator(SimConfig(calls=2, utterances=5, faults=faults, **UNDER_WAY))  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        await until_sent(sim, 3)  # sent to nobody: lost
        worker = assemble(pipeline_config(info, tmp_path, influxd, database, **QUICK))
        await run_until_filled(worker, sim)
        nursery.cancel_scope.cancel()
    rows = stored_finals(influxd, database)
    assert_each_truth_stored_once(sim, rows)
    assert backfilled(rows) >= 3
    assert worker.account.gaps_by_reason.get("head", 0) >= 1


async def heard_once(path: Path) -> None:
    """Poll until the journal says a conversation was heard: the worker is another process
    (no event reaches this one)."""
    while not (  # noqa: ASYNC110 - another process writes it
        await trio.Path(path).exists() and '"heard"' in await trio.Path(path).read_text()
    ):
        await trio.sleep(0.1)


@pytest.mark.parametrize("kill", ["at 1 s", "at 3 s", "mid-call"])
async def test_a_worker_killed_at_any_moment_misses_nothing_after_restart(
    influxd: Influxd, database: str, tmp_path: Path, kill: str
) -> None:
    faults = Faults(no_redelivery=True)
    sim = Simulator(SimConfig(calls=2, utterances=5, faults=faults, **UNDER_WAY))  # type: ignore[arg-type]
    args = [
        "--state-dir", str(tmp_path / "state"),
        "--dead-letter", str(tmp_path / "dead.jsonl"),
        "--batch-wait-ms", "20",
    ]  # fmt: skip
    scaled = ("--session-keepalive", "4", "--backfill-retry", "0.2")
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        env = {**simulator_env(info), "INFLUX_URL": influxd.url, "INFLUX_DATABASE": database}
        first = await start_worker_process(nursery, *args, env=env, cwd=tmp_path, scaled=scaled)
        if kill == "mid-call":
            with trio.fail_after(60):
                await heard_once(tmp_path / "state" / JOURNAL_FILE)
        else:
            await trio.sleep(float(kill.split()[1]))  # the moment of the crash is the test
        first.kill()  # no shutdown, no last record: a crash
        await first.wait()
        await until_sent(sim, 3)  # calls go on, unheard
        second = await start_worker_process(nursery, *args, env=env, cwd=tmp_path, scaled=scaled)
        with trio.fail_after(90):
            await sim.done.wait()
            await stored_count(influxd, database, len(sim.truth))
        second.send_signal(signal.SIGTERM)
        output = (await read_until_exit(second)).decode()
        nursery.cancel_scope.cancel()
    assert "the worker was not running from" in output
    rows = stored_finals(influxd, database)
    assert_each_truth_stored_once(sim, rows)
    assert backfilled(rows) >= 3


def queue_worker(
    info: dict[str, object], tmp_path: Path, influxd: Influxd, database: str
) -> Worker:
    """A worker that follows the simulator's queue q-1 (no conversation configured)."""
    config = pipeline_config(
        {**info, "conversation_ids": []},
        tmp_path,
        influxd,
        database,
        queue_ids=("q-1",),
        **QUICK,
    )
    return assemble(config)


async def test_a_queue_followed_across_a_clean_restart_loses_no_call(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    # Calls a second apart, each a few seconds long: some are under way at the stop, some
    # start and end while the worker is away, some start after it is back.
    config = SimConfig(
        calls=8,
        utterances=2,
        queue_id="q-1",
        faults=Faults(no_redelivery=True),
        **{**UNDER_WAY, "call_spacing_s": 1.5},  # type: ignore[arg-type]
    )
    sim = Simulator(config)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        first = queue_worker(info, tmp_path, influxd, database)
        async with trio.open_nursery() as running:
            await running.start(first.run)
            await until_sent(sim, 3)
            first.stop()
        absent_from = len(sim.truth)
        await until_sent(sim, 5)  # away: whole calls start and end unheard
        assert any(t.get("lost") for t in sim.truth[absent_from:])
        second = queue_worker(info, tmp_path, influxd, database)
        await run_until_filled(second, sim)
        nursery.cancel_scope.cancel()
    rows = stored_finals(influxd, database)
    assert_each_truth_stored_once(sim, rows)
    assert isinstance(second.backfill, Backfiller)
    assert second.backfill.counts.found_absent >= 1
    assert second.account.gaps_by_reason.get("queue_absence", 0) >= 1


async def test_without_the_analytics_permission_the_catch_up_is_off_said_and_counted(
    influxd: Influxd, database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = Simulator(
        SimConfig(calls=2, utterances=2, queue_id="q-1", faults=Faults(deny_analytics=True))
    )
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        worker = queue_worker(info, tmp_path, influxd, database)
        async with trio.open_nursery() as running:
            await running.start(worker.run)
            assert isinstance(worker.backfill, Backfiller)
            with trio.fail_after(30):
                await until(lambda: worker.account.absences_uncovered)
                await sim.done.wait()
                while worker.account.persisted < len(sim.truth) or not worker.idle():
                    await worker.wait_progress()
            worker.stop()
        nursery.cancel_scope.cancel()
    lines = [r for r in caplog.records if "cannot be looked for" in r.getMessage()]
    assert len(lines) == 1 and "analytics:conversationDetail:view" in lines[0].getMessage()
    (uncovered,) = worker.account.absences_uncovered
    assert uncovered.startswith("queue q-1 from ")
    assert "queue absences not looked at" in worker.account.summary()
    assert worker.account.persisted == len(sim.truth) == 4, "the live path goes on"


def test_the_catch_up_keeps_each_call_once_and_only_its_own() -> None:
    def call(c: str, end: int | None) -> CallRecord:
        return CallRecord(c, 1, end, ("m",))

    calls = [
        call("new-live", None),
        call("new-ended", 5),
        call("new-ended", 5),  # on two pages
        call("other-shard", None),
        call("carried-unheard-ended", 5),
        call("carried-heard", 5),
        call("settled", 5),
        call("queued", 5),
    ]
    result = sort(
        calls,
        lambda c: c != "other-shard",
        {"carried-unheard-ended": False, "carried-heard": True},
        {"settled"},
        {"queued"},
    )
    assert [c.conversation_id for c in result.follow] == ["new-live"]
    assert [c.conversation_id for c in result.backfill] == ["new-ended"]
    assert [c.conversation_id for c in result.found_ended] == ["carried-unheard-ended"]
    assert result.skipped == 4
