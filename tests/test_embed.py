"""The embedding API: ``open_transcript_stream`` builds only what it uses, honours the spool."""

from __future__ import annotations

from pathlib import Path

import trio

from trio_transcripts.assemble import assemble
from trio_transcripts.embed import ChannelSink, open_transcript_stream
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.model import Utterance
from trio_transcripts.spool import SpoolingSink
from trio_transcripts.testing.influxd import free_port
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import simulator_config


async def test_stream_uses_the_spool_and_never_the_configured_database(tmp_path: Path) -> None:
    # INFLUX_URL points where nothing listens: the stream must not build (or wait for, or
    # leave open) an InfluxDB sink; the application is the sink, behind the spool.
    nowhere = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", database="never")
    sim = Simulator(SimConfig(calls=2, utterances=4))
    received: list[Utterance] = []
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = simulator_config(info, tmp_path, influx=nowhere, spool_dir=tmp_path / "spool")
        with trio.fail_after(30):
            async with open_transcript_stream(config) as utterances:
                async for utterance in utterances:
                    received.append(utterance)
                    if len({u.key for u in received if u.final}) == len(sim.calls) * 4:
                        break
        nursery.cancel_scope.cancel()
    assert {u.key for u in received if u.final} == {
        (str(t["conversationId"]), str(t["utteranceId"])) for t in sim.truth
    }
    assert (tmp_path / "spool").is_dir(), "the spool was set up around the stream"
    assert list((tmp_path / "spool").glob("spool-*.log")) == []


def test_a_store_of_the_callers_own_still_goes_behind_the_spool(tmp_path: Path) -> None:
    # What open_transcript_stream and run_worker(sink=...) rely on.
    send, receive = trio.open_memory_channel[Utterance](0)
    info: dict[str, object] = {"login_url": "http://x", "api_url": "http://x"}
    config = simulator_config(
        info | {"conversation_ids": ["c"]}, tmp_path, spool_dir=tmp_path / "spool"
    )
    worker = assemble(config, store=ChannelSink(send))
    assert isinstance(worker.sink, SpoolingSink) and isinstance(worker.sink.inner, ChannelSink)
    assert isinstance(assemble(config).sink, SpoolingSink)
    send.close()
    receive.close()
