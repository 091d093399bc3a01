"""The backfill task on its own: the platform's post-call API answered in process (the
simulator's REST core, or a handler), a stored lookup and a write of the test's own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from trio_transcripts.backfill import Backfiller, BackfillSettings
from trio_transcripts.completeness import Completeness
from trio_transcripts.coverage import Gap, Why
from trio_transcripts.errors import FatalError
from trio_transcripts.gapfill import StoredUtterance
from trio_transcripts.gaprecords import BackfillQueue, now_ms
from trio_transcripts.journal import Journal
from trio_transcripts.model import Utterance
from trio_transcripts.postcall import NO_CONVERSATION, PostCallClient
from trio_transcripts.retry import Backoff
from trio_transcripts.sinks import WriteResult
from trio_transcripts.sinks.deadletter import DeadLetters, read_dead_letters
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.testing.simulator.postcall import transcript_document

from .simhelpers import sim_transport
from .waiting import until


class Tokens:
    async def get(self) -> str:
        return "t"

    def invalidate(self, token: str | None = None) -> None:
        pass


class NoCalls:
    """A source that follows nothing (every conversation with a gap has ended)."""

    def conversations(self) -> set[str]:
        return set()

    def follows(self, conversation_id: str) -> bool:
        return False

    def add_conversation(self, conversation_id: str) -> None:
        raise AssertionError("nothing is carried over here")

    def remove_conversation(self, conversation_id: str) -> None:
        raise AssertionError("nothing is followed here")


class Store:
    def __init__(self) -> None:
        self.written: list[Utterance] = []

    async def lookup(self, conversation_id: str) -> list[StoredUtterance]:
        return []

    async def write(self, batch: Sequence[Utterance]) -> WriteResult:
        self.written.extend(batch)
        return WriteResult.all_acknowledged(batch)


async def settled() -> bool:
    return True


def backfiller(
    tmp_path: Path, transport: httpx.AsyncBaseTransport, store: Store, **settings: object
) -> Backfiller:
    client = PostCallClient("http://api", Tokens(), transport=transport)  # type: ignore[arg-type]
    return Backfiller(
        Completeness(BackfillQueue(tmp_path / "state"), Journal(tmp_path / "state")),
        client,
        store.lookup,
        DeadLetters(tmp_path / "dead.jsonl"),
        NoCalls(),
        settings=BackfillSettings(**settings),  # type: ignore[arg-type]
    )


async def test_a_transcript_never_available_is_given_up_with_a_dead_letter(
    tmp_path: Path,
) -> None:
    sim = Simulator(SimConfig(calls=1))  # the call never ends: its transcript never comes
    call = sim.calls[0]
    store = Store()
    task = backfiller(tmp_path, sim_transport(sim), store, give_up_s=0.0)
    task.queue.record([Gap(call.conversation_id, 1_000, 2_000, Why.DROP, ("m",))])
    (job,) = task.queue.jobs.values()
    task.carry_out(job, await task.attempt(job, store.write, settled))
    await task.dead_letters.flush()
    (letter,) = read_dead_letters(tmp_path / "dead.jsonl")
    assert letter["kind"] == "backfill" and letter["conversationId"] == call.conversation_id
    assert "not available" in letter["reason"] and letter["gaps"][0]["start"]
    assert task.queue.jobs == {} and task.counts.given_up == 1 and store.written == []
    records = [json.loads(line) for line in task.queue.path.read_text().splitlines()]
    assert records[-1]["type"] == "dead"


async def test_a_rate_limit_holds_every_conversation_back(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    sim = Simulator(SimConfig(calls=2, utterances=2))
    asked_at: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if NO_CONVERSATION in request.url.path:
            return httpx.Response(404)  # the permission probe at start: allowed
        asked_at.append(trio.current_time())
        if len(asked_at) == 1:
            return httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow"})
        if request.url.path.endswith("transcripturls"):
            conversation = request.url.path.split("/")[5]
            return httpx.Response(200, json={"urls": [{"url": f"http://s3/{conversation}"}]})
        call = next(c for c in sim.calls if c.conversation_id == request.url.path.split("/")[1])
        return httpx.Response(200, json=transcript_document(call))

    store = Store()
    task = backfiller(
        tmp_path, httpx.MockTransport(handle), store, retry=Backoff(60.0, 60.0), check_s=1.0
    )
    now = now_ms()
    for call in sim.calls:
        gap = Gap(call.conversation_id, now, now + 60_000, Why.DROP, (call.communication_id,))
        task.queue.record([gap])
    async with trio.open_nursery() as nursery:
        await nursery.start(task.run, store.write, settled)
        with trio.fail_after(3_600):
            await until(lambda: not task.queue.jobs, poll_s=1.0)
        nursery.cancel_scope.cancel()
    assert asked_at[1] >= asked_at[0] + 7, "the next conversation waited for the Retry-After"
    assert len(store.written) == sum(len(c.utterances) for c in sim.calls)
    assert task.counts.retries == 1 and task.counts.conversations == 2


async def test_a_state_directory_that_cannot_be_used_is_a_clear_fatal_error(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").write_text("a file where the directory should be")
    sim = Simulator(SimConfig(calls=1))
    store = Store()
    task = backfiller(tmp_path, sim_transport(sim), store)
    with pytest.raises(FatalError, match=r"state directory .*state.* cannot be used"):
        await task.run(store.write, settled)
