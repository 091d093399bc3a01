"""The Notifications source over real loopback sockets against the simulator.

Each test runs the simulator and the source in one Trio run; ground truth is what the
simulator recorded as sent. Waiting is on events (the simulator's ``done``, the source's
statistics, a count of finals received), never on sleeps.
"""

from __future__ import annotations

import gc
import json
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from trio_transcripts.auth import Credentials, TokenManager
from trio_transcripts.backpressure import BackpressureQueue
from trio_transcripts.model import Fragment, Malformed, SessionLost
from trio_transcripts.pulse import Pulse
from trio_transcripts.retry import Backoff
from trio_transcripts.sources import SourceError, SourceEvent
from trio_transcripts.sources.notifications import (
    HANDLERS,
    NotificationsSettings,
    NotificationsSource,
)
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.wire.genesys import NotificationEvent, Transcription

from .waiting import until

FAST = Backoff(0.01, 0.1)


@dataclass
class Collected:
    fragments: list[Fragment] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    lost: list[SessionLost] = field(default_factory=list)
    changed: Pulse = field(default_factory=Pulse)

    async def emit(self, event: SourceEvent, frame: str | bytes) -> None:
        if isinstance(event, Transcription):
            self.fragments.extend(event.fragments)
        elif isinstance(event, Malformed):
            self.malformed.append(event)
        elif isinstance(event, SessionLost):
            self.lost.append(event)
        self.changed.fire()

    def finals(self) -> set[tuple[str, str]]:
        return {(f.conversation_id, f.utterance_id) for f in self.fragments if f.is_final}

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self.changed.wait()


@asynccontextmanager
async def running(
    sim_config: SimConfig, emit: Callable[..., object] | None = None, **settings: object
) -> AsyncIterator[tuple[Simulator, NotificationsSource, Collected]]:
    sim = Simulator(sim_config)
    collected = Collected()
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        tokens = TokenManager(
            Credentials("sim-client", "sim-secret", str(info["login_url"])), backoff=FAST
        )
        await nursery.start(tokens.run)
        conversations = settings.pop("conversation_ids", tuple(info["conversation_ids"]))  # type: ignore[call-overload]
        source = NotificationsSource(
            NotificationsSettings(
                str(info["api_url"]), conversation_ids=conversations, backoff=FAST, **settings
            ),  # type: ignore[arg-type]
            tokens,
        )  # type: ignore[arg-type]
        nursery.start_soon(source.run, emit or collected.emit)
        with trio.fail_after(30):
            yield sim, source, collected
        nursery.cancel_scope.cancel()
    await tokens.aclose()


def truth_keys(sim: Simulator) -> set[tuple[str, str]]:
    return {(str(t["conversationId"]), str(t["utteranceId"])) for t in sim.truth}


async def all_delivered(sim: Simulator, collected: Collected) -> None:
    await sim.done.wait()
    await collected.wait_for(lambda: collected.finals() >= truth_keys(sim))


async def test_every_final_arrives() -> None:
    async with running(SimConfig(calls=3, utterances=4)) as (sim, source, collected):
        await all_delivered(sim, collected)
        assert collected.finals() == truth_keys(sim) and len(sim.truth) == 12
        assert source.stats.channels_created == 1 and source.gaps == []
        texts = {
            (f.conversation_id, f.utterance_id): f.text for f in collected.fragments if f.is_final
        }
        assert all(
            texts[(str(t["conversationId"]), str(t["utteranceId"]))] == t["text"] for t in sim.truth
        )


async def test_reconnects_after_drops_and_counts_the_gaps() -> None:
    config = SimConfig(calls=3, utterances=5, faults=Faults(drop_every=7))
    async with running(config) as (sim, source, collected):
        await all_delivered(sim, collected)
        assert sim.stats.drops >= 3
        assert source.stats.reconnects >= 3 and len(source.gaps) >= 3
        assert collected.finals() == truth_keys(sim)


async def test_without_redelivery_what_no_socket_took_is_lost_as_on_the_platform() -> None:
    config = SimConfig(calls=3, utterances=5, faults=Faults(drop_every=7, no_redelivery=True))
    async with running(config) as (sim, _, collected):
        await sim.done.wait()
        keys = {(str(t["conversationId"]), str(t["utteranceId"])): t for t in sim.truth}
        lost = {key for key, record in keys.items() if record.get("lost")}
        live = set(keys) - lost
        await collected.wait_for(lambda: collected.finals() >= live)
        assert sim.stats.frames_lost >= 1 and sim.stats.resent == 0
        assert lost, "finals sent while no socket was there are lost, not held"
        assert collected.finals() == live
        assert len(sim.truth) == 15, "the truth still holds every utterance of the calls"


async def test_socket_closing_opens_the_new_socket_first_no_gap() -> None:
    faults = Faults(socket_closing_after=6, socket_closing_grace_s=0.5)
    async with running(SimConfig(calls=3, utterances=5, rate=200, faults=faults)) as (
        sim,
        source,
        collected,
    ):
        await all_delivered(sim, collected)
        assert source.stats.socket_closings == 1 and source.stats.connects == 2
        assert source.gaps == [], "the new socket was live before the old one closed"
        assert collected.finals() == truth_keys(sim)


async def test_handshake_401_renews_the_token_and_makes_a_new_channel() -> None:
    async with running(SimConfig(calls=2, utterances=3, faults=Faults(handshake_401=1))) as (
        sim,
        source,
        collected,
    ):
        await all_delivered(sim, collected)
        assert sim.stats.rejected_handshakes == 1 and sim.stats.tokens_issued == 2
        assert source.stats.channels_created == 2
        assert collected.finals() == truth_keys(sim)
    gc.collect()  # a socket left open (a rejected handshake's) would fail the test here


async def test_channel_rotates_before_it_expires() -> None:
    config = SimConfig(calls=2, utterances=6, rate=40, channel_ttl_s=1.2)
    async with running(config, rotate_before_s=0.8) as (sim, source, collected):
        await until(lambda: source.stats.rotations >= 1)
        await all_delivered(sim, collected)
        assert source.stats.channels_created >= 2
        assert collected.finals() == truth_keys(sim)


async def test_silent_socket_is_pinged_then_replaced() -> None:
    config = SimConfig(calls=1, utterances=2, faults=Faults(silent=True))
    async with running(config, heartbeat_timeout_s=0.2, pong_timeout_s=0.2) as (
        sim,
        source,
        collected,
    ):
        await all_delivered(sim, collected)
        await until(lambda: source.stats.dead_sockets >= 1 and source.stats.reconnects >= 1)
        assert sim.stats.pings >= 1


async def test_discovery_subscribes_queue_conversations_and_unsubscribes_at_session_end() -> None:
    config = SimConfig(calls=3, utterances=3, queue_id="q-billing")
    async with running(config, conversation_ids=(), queue_ids=("q-billing",)) as (
        sim,
        source,
        collected,
    ):
        await all_delivered(sim, collected)
        await until(lambda: source.stats.unsubscribed >= 3)
        assert source.stats.discovered == 3
        assert collected.finals() == truth_keys(sim)
        assert source.conversations() == set()


async def test_topics_of_calls_that_end_together_are_dropped_in_one_request() -> None:
    # Dropping a topic is a PUT of the whole list: the calls that end within a second share
    # one (the simulator sends every frame at once, so all three end within milliseconds).
    config = SimConfig(calls=3, utterances=2)
    async with running(config) as (sim, source, collected):
        await all_delivered(sim, collected)
        await until(lambda: source.stats.unsubscribed >= 3)
        while any(channel.topics for channel in sim.api.channels.values()):
            await sim.hub.wait_changed()
        assert sim.stats.subscription_puts == 1


async def test_a_conversation_silent_past_the_keepalive_ends_unseen(tmp_path: Path) -> None:
    # One call that never says SESSION_ENDED (a mid-call failure), one that does; the
    # keepalive shrunk to a fraction of a second so the test waits on the source's own timer.
    def message(conversation: str, status: str) -> str:
        body = {"sessionStartTimeMs": 1_000, "transcripts": [], "status": {"status": status}}
        topic = f"v2.conversations.{conversation}.transcription"
        return json.dumps({"topicName": topic, "eventBody": body})

    replay = tmp_path / "frames.jsonl"
    replay.write_text(
        "\n".join(
            [
                message("c-failed", "SESSION_ONGOING"),
                message("c-ended", "SESSION_ONGOING"),
                message("c-ended", "SESSION_ENDED"),
            ]
        )
        + "\n"
    )
    config = SimConfig(replay_path=replay, start_after_sockets=1)
    settings = {"keepalive_s": 0.2, "silence_margin_s": 0.1, "liveness_check_s": 0.05}
    async with running(config, conversation_ids=("c-failed", "c-ended"), **settings) as (
        sim,
        source,
        collected,
    ):
        await sim.done.wait()
        await collected.wait_for(lambda: bool(collected.lost))
        (lost,) = collected.lost
        assert lost.conversation_id == "c-failed" and lost.silent_ms > 300
        assert source.conversations() == set(), "both unsubscribed: one ended, one went silent"
        assert len(source.liveness) == 0
        # A late frame of a conversation no longer followed: its silence is not news.
        source.liveness.heard("c-ended", 0)
        assert await source.check_liveness(10**9) == []
        assert len(collected.lost) == 1


async def test_a_channel_gone_when_its_subscriptions_change_is_replaced() -> None:
    config = SimConfig(calls=2, utterances=2)
    async with running(config) as (sim, source, collected):
        await all_delivered(sim, collected)
        (gone,) = list(sim.api.channels)
        del sim.api.channels[gone]  # the platform forgot it; its socket is still open
        source.add_conversation("c-new")  # the next subscription change meets the 404
        await until(lambda: source.stats.channels_created == 2)
        while not any(
            "v2.conversations.c-new.transcription" in c.topics for c in sim.api.channels.values()
        ):
            await sim.hub.wait_changed()
        assert gone not in sim.api.channels


async def test_more_than_1000_topics_open_more_channels() -> None:
    sim_config = SimConfig(calls=2, utterances=2)
    placeholder = tuple(f"idle-{i}" for i in range(1000))
    sim = Simulator(sim_config)
    conversations = placeholder + tuple(c.conversation_id for c in sim.calls)
    async with running(sim_config, conversation_ids=conversations) as (sim, source, collected):
        await all_delivered(sim, collected)
        assert source.stats.channels_created == 2
        assert collected.finals() == truth_keys(sim)


async def test_missing_permission_is_a_clear_error() -> None:
    sim = Simulator(SimConfig(faults=Faults(deny_transcription=True)))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        tokens = TokenManager(Credentials("sim-client", "sim-secret", str(info["login_url"])))
        await nursery.start(tokens.run)
        source = NotificationsSource(
            NotificationsSettings(str(info["api_url"]), tuple(info["conversation_ids"])),  # type: ignore[arg-type]
            tokens,
        )
        with pytest.RaisesGroup(
            pytest.RaisesExc(SourceError, match="conversation:transcription:view"),
            flatten_subgroups=True,
        ):
            await source.run(Collected().emit)
        nursery.cancel_scope.cancel()
    await tokens.aclose()


async def test_malformed_and_oversized_frames_are_reported_not_fatal() -> None:
    faults = Faults(malformed_every=4, oversized_every=5)
    async with running(SimConfig(calls=2, utterances=3, faults=faults)) as (sim, _, collected):
        await all_delivered(sim, collected)
        reasons = [m.reason for m in collected.malformed]
        assert any("invalid JSON" in r for r in reasons)
        assert any("exceeds" in r for r in reasons)
        assert collected.finals() == truth_keys(sim)


async def test_reader_blocks_at_high_water_without_losing_a_frame() -> None:
    queue: BackpressureQueue[Fragment] = BackpressureQueue(8)

    async def emit(event: SourceEvent, frame: str | bytes) -> None:
        if isinstance(event, Transcription):
            for fragment in event.fragments:
                await queue.put(fragment)

    config = SimConfig(calls=30, utterances=30)  # ~3 MB: more than loopback buffers hold
    async with running(config, emit=emit) as (sim, _, _collected):
        with trio.fail_after(30):
            await until(lambda: queue.paused)
        assert not sim.done.is_set(), "the reader stopped reading: the stream waits for it"
        sent_while_paused = sim.stats.frames_sent
        received: list[Fragment] = []

        async def consume() -> None:
            while True:
                received.extend(await queue.get_batch(3))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            await sim.done.wait()
            truth = truth_keys(sim)
            with trio.fail_after(30):
                await until(
                    lambda: (
                        {(f.conversation_id, f.utterance_id) for f in received if f.is_final}
                        >= truth
                    )
                )
            await trio.testing.wait_all_tasks_blocked()  # a duplicate would be in by now
            nursery.cancel_scope.cancel()
        assert len(queue) == 0
        assert sent_while_paused < sim.stats.frames_sent
        finals = [(f.conversation_id, f.utterance_id) for f in received if f.is_final]
        assert sorted(finals) == sorted(truth_keys(sim)), "every final once, none lost"


async def test_conversations_added_before_run_starts_are_followed() -> None:
    config = SimConfig(calls=2, utterances=4)
    first, second = (c.conversation_id for c in Simulator(config).calls)
    async with running(config, conversation_ids=()) as (sim, source, collected):
        # ``running`` only scheduled source.run(); it has not started yet.
        source.add_conversation(first)
        source.add_conversation(second)
        assert source.conversations() == {first, second}
        await all_delivered(sim, collected)
        assert collected.finals() == truth_keys(sim)


async def test_expired_channel_404_makes_a_new_channel_and_resubscribes() -> None:
    config = SimConfig(calls=2, utterances=14, rate=30, channel_ttl_s=1.0)  # ~3 s of frames
    async with running(config, rotate_before_s=-30.0) as (sim, source, collected):
        await until(lambda: source.stats.channels_gone >= 1 and source.stats.channels_created >= 2)
        await all_delivered(sim, collected)
        assert collected.finals() == truth_keys(sim)


async def test_replay_sends_frames_verbatim_once_subscribed(tmp_path: Path) -> None:
    final = {
        "topicName": "v2.conversations.c-replay.transcription",
        "eventBody": {
            "sessionStartTimeMs": 1000,
            "transcripts": [
                {
                    "utteranceId": "u1",
                    "isFinal": True,
                    "channel": "INTERNAL",
                    "alternatives": [{"transcript": "replayed", "offsetMs": 5}],
                }
            ],
        },
    }
    other = {"topicName": "v2.conversations.not-ours.transcription", "eventBody": {}}
    replay = tmp_path / "frames.jsonl"
    replay.write_text(
        "\n".join(
            [
                '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}',
                json.dumps(final),
                "this is {not json",
                json.dumps(other),
            ]
        )
        + "\n"
    )
    config = SimConfig(replay_path=replay, subscribe_wait_s=0.3)
    async with running(config, conversation_ids=("c-replay",)) as (sim, _, collected):
        await sim.done.wait()
        await collected.wait_for(lambda: bool(collected.finals()) and bool(collected.malformed))
    assert [(f.utterance_id, f.text, f.start_ms) for f in collected.fragments] == [
        ("u1", "replayed", 1005)
    ]
    assert "invalid JSON" in collected.malformed[0].reason
    assert sim.stats.frames_skipped == 1, "the unsubscribed topic was skipped"


def test_every_kind_of_notification_has_its_handler() -> None:
    kinds = set(typing.get_args(NotificationEvent)) - {Transcription, Malformed}  # to emit
    assert kinds == set(HANDLERS), "a message kind without a handler would end the socket"
