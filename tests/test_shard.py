"""Shards: a stable hash, the shard from a pod name, the channel budget, and three shards
against one simulator."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.assemble import assemble
from trio_transcripts.channels import ChannelBudgetExceeded, ChannelPlan
from trio_transcripts.config import load_config
from trio_transcripts.errors import ConfigError
from trio_transcripts.shard import Shard, budget_problem, parse_shard, shard_of
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.wire.genesys import transcription_topic
from trio_transcripts.worker import Worker

from .pipeline import assert_matches_truth, pipeline_config


def test_the_hash_is_stable_across_machines_and_versions() -> None:
    # Pinned values: a change here would move conversations between the shards of a fleet.
    conversation = "97b9dcb3-0cde-4fb4-8b8f-1e2c0d2f3a4b"
    assert [shard_of(c, 8) for c in ("", "a", conversation)] == [4, 7, 0]
    assert [shard_of(c, 1000) for c in ("", "a", conversation)] == [876, 343, 200]


@given(st.text(), st.integers(1, 64))
def test_every_conversation_has_exactly_one_shard(conversation: str, count: int) -> None:
    owners = [i for i in range(count) if Shard(i, count).owns(conversation)]
    assert len(owners) == 1


@pytest.mark.parametrize(
    ("text", "hostname", "expected"),
    [
        ("2/8", "anything", Shard(2, 8)),
        ("0/1", "x", Shard(0, 1)),
        ("auto/3", "transcripts-2", Shard(2, 3)),
        ("auto/12", "worker-10", Shard(10, 12)),
    ],
)
def test_parse_shard(text: str, hostname: str, expected: Shard) -> None:
    assert parse_shard(text, hostname) == expected


@pytest.mark.parametrize(
    ("text", "hostname", "message"),
    [
        ("8/8", "x", "below 8"),
        ("2-8", "x", "I/N or auto/N"),
        ("auto/3", "laptop", "does not end in -<number>"),
        ("auto/3", "transcripts-3", "below 3"),
        ("0/0", "x", "at least 1"),
    ],
)
def test_bad_shards_say_why(text: str, hostname: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(text, hostname)


def test_a_configuration_over_the_channel_budget_is_refused() -> None:
    conversations = [f"c{i}" for i in range(2500)]
    assert budget_problem(Shard(0, 6), conversations, ()) is None  # 6 x 1 channel
    assert budget_problem(Shard(0, 10), conversations, ["q"] * 900) is None  # 10 x 2
    problem = budget_problem(Shard(0, 11), conversations, ["q"] * 900)
    assert problem is not None and problem.startswith("11 shard(s) x 2 channel(s) each = 22")
    assert budget_problem(None, [f"c{i}" for i in range(20_000)], ()) is None
    assert budget_problem(None, [f"c{i}" for i in range(20_001)], ()) is not None
    with pytest.raises(ConfigError, match="more than the 20 one OAuth client may hold"):
        load_config(
            environ={
                "GENESYS_CLIENT_ID": "id",
                "GENESYS_CLIENT_SECRET": "s",
                "CONVERSATION_ID": ",".join(f"c{i}" for i in range(12_000)),
                "SHARD": "0/11",
            },
            env_file=None,
        )


def test_the_planner_refuses_a_21st_channel() -> None:
    plan = ChannelPlan(max_topics_per_channel=1, max_channels=20)
    for i in range(20):
        plan.add(transcription_topic(f"c{i}"))
    with pytest.raises(ChannelBudgetExceeded, match="one OAuth client may hold 20 channels"):
        plan.add(transcription_topic("c20"))


async def any_progress(workers: list[Worker]) -> None:
    """Until one of ``workers`` finishes a batch."""
    async with trio.open_nursery() as nursery:
        for worker in workers:

            async def wait(worker: Worker = worker) -> None:
                await worker.wait_progress()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


@pytest.mark.parametrize("discovery", [False, True], ids=["conversation-ids", "queue"])
async def test_three_shards_store_each_utterance_once(
    tmp_path: Path, influxd: Influxd, database: str, discovery: bool
) -> None:
    queue = "q-support" if discovery else None
    # With a queue, every shard must be listening before the first call is announced: a
    # shard that connects later misses what was announced before (the platform replays
    # nothing; backfill is what closes such gaps).
    sim = Simulator(
        SimConfig(calls=30, utterances=3, queue_id=queue, start_after_sockets=3 if queue else 1)
    )
    workers: list[Worker] = []
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        for index in range(3):
            changes: dict[str, object] = {
                "shard": Shard(index, 3),
                "dead_letter_path": tmp_path / f"dead-{index}.jsonl",
                "state_dir": tmp_path / f"state-{index}",  # each its own, as under --workers
            }
            if discovery:
                changes |= {"conversation_ids": (), "queue_ids": (queue,)}
            worker = assemble(pipeline_config(info, tmp_path, influxd, database, **changes))
            workers.append(worker)
            await nursery.start(worker.run)
        with trio.fail_after(60):
            await sim.done.wait()
            while sum(w.account.persisted for w in workers) < len(sim.truth):
                await any_progress(workers)
        for worker in workers:
            worker.stop()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert_matches_truth(sim, influxd, database)
    for index, worker in enumerate(workers):
        # A shard that followed another's conversation would have its finals too.
        own = [t for t in sim.truth if shard_of(str(t["conversationId"]), 3) == index]
        assert worker.account.finals == worker.account.persisted == len(own) > 0
        assert worker.account.duplicates == 0
