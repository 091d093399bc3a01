"""No card number reaches a file the worker writes (issue 22): the simulator sends a card
read out in one utterance, one read in two groups, a security code, and a malformed frame
holding a card; the worker stores into the file sink or a real InfluxDB 1.6."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import trio

from trio_transcripts.assemble import assemble
from trio_transcripts.sinks.deadletter import read_dead_letters
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.simulator import SimConfig, Simulator

from .pipeline import pipeline_config, simulator_config
from .waiting import until

CARD = "4111 1111 1111 1111"
TOPIC = "v2.conversations.c-pay.transcription"


def final(n: int, text: str, channel: str = "EXTERNAL") -> str:
    return json.dumps(
        {
            "topicName": TOPIC,
            "eventBody": {
                "sessionStartTimeMs": 1_773_957_874_000,
                "transcripts": [
                    {
                        "utteranceId": f"u{n}",
                        "isFinal": True,
                        "channel": channel,
                        "alternatives": [{"transcript": text, "offsetMs": n * 1000}],
                    }
                ],
            },
        }
    )


FRAMES = [
    final(1, f"my card number is {CARD} thanks"),
    final(2, "and the other one is 5555 5555"),
    final(3, "can you repeat that", channel="INTERNAL"),  # the agent, in between
    final(4, "5555 4444 that's it"),
    final(5, "the security code is"),
    final(6, "seven three seven"),
    '{"topicName": "'
    + TOPIC
    + '", "eventBody": {"transcripts": [{"utteranceId": "u7", "alt'
    + f'ernatives": [{{"transcript": "card {CARD}',  # cut short: malformed, a card inside
]
SECRETS = ["4111", "5555", "737", "seven three seven"]
"""Each as digits or words of their own: a log line's ``0x7f8870737e10`` holds no code."""


@pytest.mark.parametrize("store", ["file", "influxdb"])
async def test_no_card_number_reaches_the_store_the_dead_letters_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, store: str, request: pytest.FixtureRequest
) -> None:
    caplog.set_level(logging.DEBUG)
    replay = tmp_path / "frames.jsonl"
    replay.write_text("\n".join(FRAMES) + "\n", encoding="utf-8")
    sim = Simulator(SimConfig(replay_path=replay, subscribe_wait_s=0.1))
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        changes = {"conversation_ids": ("c-pay",), "backfill": False}
        if store == "influxdb":
            influxd: Influxd = request.getfixturevalue("influxd")
            database = request.getfixturevalue("database")
            config = pipeline_config(info, tmp_path, influxd, database, **changes)
        else:
            config = simulator_config(info, tmp_path, **changes)
        worker = assemble(config)
        with trio.fail_after(60):
            await nursery.start(worker.run)
            await until(lambda: worker.account.frames == len(FRAMES) and worker.idle())
            worker.stop()
        nursery.cancel_scope.cancel()
    if store == "influxdb":
        rows = influxd.query("SELECT * FROM transcriptions", db=database)
        stored = {str(r["utteranceId"]): str(r["text"]) for r in rows}
    else:
        from trio_transcripts.lineproto import decode

        lines = (tmp_path / "out.lp").read_text("utf-8").split("\n")[:-1]
        stored = {str(p.fields["utteranceId"]): str(p.fields["text"]) for p in map(decode, lines)}
    assert stored == {
        "u1": "my card number is [card number] thanks",
        "u2": "and the other one is [card number]",
        "u3": "can you repeat that",
        "u4": "[card number] that's it",
        "u5": "the security code is",
        "u6": "[security code]",
    }
    letters = (tmp_path / "dead.jsonl").read_text("utf-8")
    [record] = read_dead_letters(tmp_path / "dead.jsonl")
    assert record["kind"] == "frame" and "[card number]" in record["frame"]
    everything = letters + caplog.text
    clear = [s for s in SECRETS if re.search(rf"(?<![0-9A-Za-z]){s}(?![0-9A-Za-z])", everything)]
    assert not clear, "nothing of the card or code in clear"
    assert worker.account.redacted == {"card": 3, "cvv": 1}
