"""The fragment-stream source over real sockets against the simulator."""

from __future__ import annotations

import gc

import trio

from trio_transcripts.auth import Credentials, TokenManager
from trio_transcripts.model import Fragment
from trio_transcripts.pulse import Pulse
from trio_transcripts.retry import Backoff
from trio_transcripts.sources import GapLog, SourceEvent
from trio_transcripts.sources.fragment_stream import FragmentStreamSettings, FragmentStreamSource
from trio_transcripts.testing.simulator import FRAGMENT_PATH, Faults, SimConfig, Simulator


async def test_401_renews_the_token_and_drops_reconnect() -> None:
    sim = Simulator(
        SimConfig(
            calls=2, utterances=4, source="fragments", faults=Faults(handshake_401=1, drop_every=6)
        )
    )
    fragments: list[Fragment] = []
    changed = Pulse()

    async def emit(event: SourceEvent, frame: str | bytes) -> None:
        assert isinstance(event, Fragment)
        fragments.append(event)
        changed.fire()

    def all_finals() -> bool:
        finals = {(f.conversation_id, f.utterance_id) for f in fragments if f.is_final}
        return len(finals) == len(sim.truth)

    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        tokens = TokenManager(Credentials("sim-client", "sim-secret", str(info["login_url"])))
        await nursery.start(tokens.run)
        source = FragmentStreamSource(
            FragmentStreamSettings(
                f"ws://127.0.0.1:{sim.port}{FRAGMENT_PATH}", backoff=Backoff(0.01, 0.1)
            ),
            tokens,
        )
        nursery.start_soon(source.run, emit)
        with trio.fail_after(30):
            await sim.done.wait()
            while not all_finals():
                await changed.wait()
        nursery.cancel_scope.cancel()
    await tokens.aclose()
    gc.collect()  # a socket left open (a rejected handshake's) would fail the test here
    assert sim.stats.rejected_handshakes == 1 and sim.stats.tokens_issued == 2
    assert sim.stats.drops >= 2 and len(source.gaps) >= 2
    pieces: dict[tuple[str, str], str] = {}
    for f in fragments:
        pieces[(f.conversation_id, f.utterance_id)] = (
            pieces.get((f.conversation_id, f.utterance_id), "") + f.text
        )
    for truth in sim.truth:  # each piece once, in order: the text is exact
        assert pieces[(str(truth["conversationId"]), str(truth["utteranceId"]))] == truth["text"]


def test_a_gap_still_open_when_the_source_stops_is_counted() -> None:
    gaps = GapLog("fragment stream")
    gaps.live(("c",))  # never lost: nothing to count
    gaps.lost()
    gaps.lost()  # the same gap
    gaps.stopped(("c",))
    (gap,) = gaps.gaps
    assert gap.conversations == ("c",) and gap.end_ms >= gap.start_ms
    gaps.stopped(("c",))
    assert len(gaps.gaps) == 1
