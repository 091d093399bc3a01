"""The bench's load generator: its frames are the simulator's, byte for byte, and its truth
is what it sent; the raw reader's frame counter is exact however the bytes are split."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.testing.loadgen import (
    FrameCounter,
    LoadGenerator,
    render,
    server_frame,
    upgrade_request,
)
from trio_transcripts.testing.simulator import SimConfig
from trio_transcripts.testing.simulator.calls import make_calls, stream_frames


@given(
    sizes=st.lists(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70000]), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=20),
)
def test_frame_counter_counts_every_frame_however_the_bytes_are_split(
    sizes: list[int], cuts: list[int]
) -> None:
    stream = b"".join(server_frame(b"x" * size) for size in sizes)
    counter = FrameCounter()
    at = 0
    for cut in sorted(c for c in cuts if c <= len(stream)):
        counter.feed(stream[at:cut])
        at = cut
    counter.feed(stream[at:])
    assert (counter.frames, counter.bytes, counter.closed) == (len(sizes), len(stream), False)


@pytest.mark.parametrize("source", ["notifications", "fragments"])
def test_rendered_frames_are_the_simulators_frames(source: str) -> None:
    config = SimConfig(calls=3, utterances=4, seed=7, source=source, epoch_ms=1_700_000_000_000)
    rendered = render(config)
    calls = make_calls(3, 4, 7, 1_700_000_000_000)
    expected = [f.text.encode() for f in stream_frames(calls, source, 7)]
    counter = FrameCounter()
    counter.feed(rendered.stream)
    assert counter.frames == rendered.frames == len(expected)
    assert b"".join(server_frame(text) for text in expected) == rendered.stream
    assert len(rendered.finals) == 12


async def token(client: httpx.AsyncClient) -> str:
    answer = await client.post(
        "/oauth/token", auth=("sim-client", "sim-secret"), data={"grant_type": "client_credentials"}
    )
    return str(answer.json()["access_token"])


@pytest.mark.parametrize("source", ["notifications", "fragments"])
async def test_a_client_reads_the_whole_stream_and_the_truth_says_what_was_sent(
    source: str, tmp_path: Path
) -> None:
    config = SimConfig(calls=2, utterances=3, seed=3, source=source, epoch_ms=1_700_000_000_000)
    generator = LoadGenerator(config, render(config))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(generator.serve)
        async with httpx.AsyncClient(base_url=str(info["api_url"])) as client:
            headers = {"Authorization": f"Bearer {await token(client)}"}
            url = str(info["fragment_stream_url"])
            if source == "notifications":
                channel = (
                    await client.post("/api/v2/notifications/channels", headers=headers)
                ).json()
                topics = [
                    {"id": f"v2.conversations.{c}.transcription"} for c in info["conversation_ids"]
                ]
                await client.put(
                    f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
                    json=topics,
                    headers=headers,
                )
                url = channel["connectUri"]
        async with trio_websocket.open_websocket_url(
            url, extra_headers=[(b"Authorization", headers["Authorization"].encode())]
        ) as ws:
            messages = [await ws.get_message() for _ in range(generator.rendered.frames)]
            await ws.send_message('{"message":"ping"}')
            assert json.loads(await ws.get_message())["eventBody"]["message"] == "pong"
        # The close handshake was answered: the client saw a normal closure.
        assert ws.closed is not None and ws.closed.code == 1000  # our close was answered
        nursery.cancel_scope.cancel()
    calls = make_calls(2, 3, 3, 1_700_000_000_000)
    assert messages == [f.text for f in stream_frames(calls, source, 3)]
    generator.write_truth(tmp_path)
    truth = [json.loads(line) for line in (tmp_path / "truth-0.jsonl").read_text().splitlines()]
    assert sorted(r["utteranceId"] for r in truth) == sorted(
        u.utterance_id for call in calls for u in call.utterances
    )
    assert all(isinstance(r["sentAt"], float) for r in truth)


async def test_a_client_leaving_mid_stream_leaves_the_generator_serving() -> None:
    config = SimConfig(calls=20, utterances=40, seed=3, source="fragments")
    generator = LoadGenerator(config, render(config))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(generator.serve)
        async with httpx.AsyncClient(base_url=str(info["api_url"])) as client:
            bearer = [(b"Authorization", f"Bearer {await token(client)}".encode())]
        url = str(info["fragment_stream_url"])
        async with trio_websocket.open_websocket_url(
            url, extra_headers=bearer, disconnect_timeout=0.1
        ) as ws:
            await ws.get_message()  # then leave with a close frame, most of the stream unsent
        # Then a client that vanishes without a close frame: the generator's writes break.
        port = int(url.split(":")[2].split("/")[0])
        async with await trio.open_tcp_stream("127.0.0.1", port) as raw:
            await raw.send_all(upgrade_request(url, bearer))
            assert b"101 Switching Protocols" in await raw.receive_some(65536)
        async with trio_websocket.open_websocket_url(url, extra_headers=bearer) as ws:
            messages = [await ws.get_message() for _ in range(generator.rendered.frames)]
        nursery.cancel_scope.cancel()
    assert len(messages) == generator.rendered.frames == 20 * 40 * 3
    assert len(generator.served) == 3
