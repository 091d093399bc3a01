"""Bad input (issue 21): each kind says what it is, and where it went.

The parsers first (pure), then one socket that sends what no Genesys server should, then
the worker reading a replay of every kind from the simulator into the file sink, and
InfluxDB 1.6 storing text with control characters.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.assemble import assemble
from trio_transcripts.channels import SocketEnd
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import decode, encode
from trio_transcripts.logthrottle import Repeats
from trio_transcripts.model import Malformed, Utterance
from trio_transcripts.sensitive import Screen
from trio_transcripts.sinks.deadletter import frame_line, read_dead_letters
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.sources._socket import Socket, SocketOptions, read_socket
from trio_transcripts.testing.influxd import Influxd
from trio_transcripts.testing.loadgen import server_frame
from trio_transcripts.testing.simulator import SimConfig, Simulator
from trio_transcripts.wire.genesys import (
    Transcription,
    parse_notification,
    read_notification,
    strict_transcription,
)

from .pipeline import simulator_config
from .rawsocket import accept
from .waiting import until

TOPIC = "v2.conversations.c-bad.transcription"
CONTROLS = "".join(chr(c) for c in range(32) if chr(c) not in "\r\n") + "\x7f\x85\u2028\ufeff"
"""Every C0 control but CR and LF, DEL, a C1 control, LINE SEPARATOR and a BOM."""


def message(transcripts: list[dict[str, object]], **body: object) -> dict[str, object]:
    return {
        "topicName": TOPIC,
        "eventBody": {"sessionStartTimeMs": 1_700_000_000_000, "transcripts": transcripts, **body},
    }


def transcript(n: int, text: str = "words", **alternative: object) -> dict[str, object]:
    return {
        "utteranceId": f"u{n}",
        "isFinal": True,
        "alternatives": [{"transcript": text, "offsetMs": n, "durationMs": 1, **alternative}],
    }


ONE = json.dumps(message([transcript(1)]))

# --- the parsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ONE.replace('"durationMs": 1', '"durationMs": 1, "confidence": NaN'), "NaN is not JSON"),
        (ONE.replace('"durationMs": 1', '"durationMs": Infinity'), "Infinity is not JSON"),
        (ONE.replace('"durationMs": 1', '"durationMs": -Infinity'), "-Infinity is not JSON"),
        (ONE.replace('"offsetMs": 1', '"offsetMs": 1e999'), "1e999 overflows a double"),
        (ONE.replace("[{", "[" * 100_000 + "{", 1), "nests too deeply"),
        (
            '{"topicName": "' + "x" * (1 << 20) + '"}',
            "frame of 1,048,593 bytes exceeds the 1,048,576-byte limit",
        ),
        (b'{"topicName": "\xff"}', "not UTF-8 (invalid start byte at byte 15)"),
    ],
)
def test_what_json_or_the_limits_do_not_allow_is_malformed_and_says_why(
    frame: str | bytes, reason: str
) -> None:
    event = parse_notification(frame)
    assert isinstance(event, Malformed), event
    assert reason in event.reason
    assert strict_transcription(frame) is None


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (ONE.replace('"offsetMs": 1', '"offsetMs": 99999999999999999999'), "time 1000000"),
        (ONE.replace('"offsetMs": 1', '"offsetMs": 1e300'), "time of 301 digits ms is outside"),
        (  # a time base beyond an int64 of nanoseconds: stored with each row, so none can be
            ONE.replace("1700000000000", '1700000000000, "transcriptionStartTimeMs": 2e19'),
            "eventBody.transcriptionStartTimeMs: time 20000000000000000000 ms is outside",
        ),
        (ONE.replace("1700000000000", "1e300"), "sessionStartTimeMs: time of 301 digits ms"),
    ],
)
def test_numbers_beyond_an_int64_of_nanoseconds_make_the_transcript_unreadable(
    frame: str, problem: str
) -> None:
    event = parse_notification(frame)
    assert isinstance(event, Transcription) and event.fragments == ()
    [said] = event.problems
    assert problem in said and "outside InfluxDB's range" in said


def test_nesting_the_fast_path_takes_is_read_and_deeper_is_set_aside() -> None:
    nested = message([transcript(1)], extra=json.loads("[" * 100 + "]" * 100))
    event = parse_notification(json.dumps(nested))
    assert isinstance(event, Transcription) and [f.utterance_id for f in event.fragments] == ["u1"]
    deep = (
        json.dumps(message([transcript(1)]))
        .replace('"extra"', "x")
        .replace("[{", '[{"extra": ' + "[" * 5_000 + "]" * 5_000 + ", ", 1)
    )
    event = parse_notification(deep)
    assert isinstance(event, Malformed) and event.reason == "frame nests too deeply"


def test_a_session_end_with_a_time_base_beyond_range_still_ends_the_session() -> None:
    frame = json.loads(ONE)
    frame["eventBody"]["sessionStartTimeMs"] = 2 * 10**19
    frame["eventBody"]["status"] = {"status": "SESSION_ENDED"}
    event = parse_notification(json.dumps(frame))
    assert isinstance(event, Transcription) and event.session_ended and event.fragments == ()
    [problem] = event.problems
    assert "sessionStartTimeMs: time 20000000000000000000 ms is outside" in problem


KEYS = ["topicName", "eventBody", "transcripts", "utteranceId", "isFinal", "transcript"]


@given(st.lists(st.tuples(st.sampled_from(KEYS), st.integers(0, 3)), min_size=1, max_size=4))
def test_duplicate_keys_the_fast_and_the_tolerant_path_decide_alike(
    duplicates: list[tuple[str, int]],
) -> None:
    # A duplicate of a key, before or after the original, with another value of its kind:
    # both parsers take the last (as Python's json and msgspec both do).
    values: dict[str, list[str]] = {
        "topicName": [json.dumps(TOPIC), '"v2.conversations.other.transcription"', "5"],
        "eventBody": ['{"transcripts": []}', "[]"],
        "transcripts": ['[{"utteranceId": "dup", "isFinal": true}]', "[]", '"x"'],
        "utteranceId": ['"dup"', '""', "7"],
        "isFinal": ["false", "true", '"yes"'],
        "transcript": ['"dup text"', "null", "1"],
    }
    frame = ONE
    for key, pick in duplicates:
        value = values[key][pick % len(values[key])]
        frame = frame.replace(f'"{key}": ', f'"{key}": {value}, "{key}": ', 1)
    fast = strict_transcription(frame)
    tolerant = read_notification(frame)
    assert fast is None or fast == tolerant
    assert tolerant == read_notification(json.dumps(json.loads(frame)))


def test_control_characters_reach_the_text_and_the_line_as_sent_but_newlines() -> None:
    text = f"a{CONTROLS}b\r\nc\nd"
    event = parse_notification(json.dumps(message([transcript(1, text)])))
    assert isinstance(event, Transcription)
    [fragment] = event.fragments
    assert fragment.text == text
    utterance = Utterance("c-bad", "u1", "customer", text, 0.9, 1, 2, True, 1)
    line = encode(utterance)
    assert "\n" not in line and "\r" not in line
    assert decode(line).fields["text"] == f"a{CONTROLS}b c d"


def test_a_binary_frame_is_read_as_its_utf8_text_and_one_that_is_not_is_set_aside_whole() -> None:
    assert parse_notification(ONE.encode()) == parse_notification(ONE)
    frame = ONE.encode().replace(b"words", b"wo\xffrds")
    event = parse_notification(frame)
    assert isinstance(event, Malformed) and "not UTF-8" in event.reason
    record = json.loads(frame_line(frame, event.reason, "notifications", Screen(frozenset())))
    assert record["frame"] == ONE.replace("words", "wo\\xffrds"), "each bad byte escaped"
    assert record["size"] == len(frame)


def test_a_dead_letter_record_holds_a_frame_over_the_limit_whole() -> None:
    frame = '{"topicName": "' + "\u00e9" * (3 << 20) + '"}'  # 6 MiB of UTF-8
    event = parse_notification(frame)
    assert isinstance(event, Malformed) and "exceeds" in event.reason
    record = json.loads(frame_line(frame, event.reason, "notifications", Screen(frozenset())))
    assert record["frame"] == frame and record["size"] == len(frame.encode())


# --- a socket that sends what no Genesys server should ------------------------------------


async def test_a_text_frame_that_is_not_utf8_closes_the_socket_and_says_what_was_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # wsproto refuses such a frame (RFC 6455 section 8.1) and trio-websocket closes the
    # socket with 1007: the frame never reaches us. What came before it did.
    async def serve(stream: trio.SocketStream) -> None:
        await accept(stream)
        await stream.send_all(
            server_frame(ONE.encode())
            + server_frame(b"\xff\xfe not UTF-8")
            + server_frame(b'{"binary": true}', opcode=0x2)
        )
        await trio.sleep_forever()

    received: list[str | bytes] = []

    async def read(socket: Socket) -> SocketEnd:
        while True:
            received.append(await socket.get_message())

    caplog.set_level(logging.INFO, "trio_transcripts.source")
    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        with trio.fail_after(10):
            end = await read_socket(
                f"ws://127.0.0.1:{port}/", SocketOptions(), read, where="test", repeats=Repeats()
            )
        nursery.cancel_scope.cancel()
    assert end is SocketEnd.CLOSED
    assert received == [ONE], "the frame before it arrived; it and the one after did not"
    [line] = [r.getMessage() for r in caplog.records if "1007" in r.getMessage()]
    assert "a text frame that is not valid UTF-8" in line and "gap is recorded" in line


# --- the worker, reading every kind from the simulator ----------------------------------


async def test_every_bad_frame_is_set_aside_whole_once_and_the_good_text_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    terse = [
        {
            "utteranceId": f"u{n}",
            "isFinal": True,
            "alternatives": [{"transcript": "w", "offsetMs": n}],
        }
        for n in range(10_000)
    ]
    many = json.dumps(message(terse), separators=(",", ":"))
    assert len(many) < 1 << 20, "one frame, under the limit"
    controls = json.dumps(message([transcript(20_001, f"ctl{CONTROLS}end")]))
    duplicated = ONE.replace('"utteranceId": "u1"', '"utteranceId": "u0", "utteranceId": "u20002"')
    bad = [
        "this is {not json",
        json.dumps(message([], pad="x" * (1 << 20))),
        ONE.replace("[{", "[" * 5_000 + "{", 1),
        ONE.replace('"durationMs": 1', '"durationMs": NaN'),
        ONE.replace('"offsetMs": 1', '"offsetMs": 1e999'),
        ONE.replace('"offsetMs": 1', '"offsetMs": 99999999999999999999'),
    ]
    replay = tmp_path / "frames.jsonl"
    replay.write_text("\n".join([many, *bad, controls, duplicated]) + "\n", encoding="utf-8")
    sim = Simulator(SimConfig(replay_path=replay, subscribe_wait_s=0.1))
    caplog.set_level(logging.WARNING, "trio_transcripts.worker")
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = simulator_config(
            info, tmp_path, conversation_ids=("c-bad",), buffer_capacity=500, backfill=False
        )
        worker = assemble(config)
        with trio.fail_after(60):
            await nursery.start(worker.run)
            await until(lambda: worker.account.frames == 2 + len(bad) + 1 and worker.idle())
            worker.stop()
        nursery.cancel_scope.cancel()
    stored = {
        str(line.fields["utteranceId"]): str(line.fields["text"])
        for line in map(decode, (tmp_path / "out.lp").read_text("utf-8").split("\n")[:-1])
    }
    assert len(stored) == 10_002
    assert stored["u20001"] == f"ctl{CONTROLS}end" and stored["u20002"] == "words"
    assert worker.snapshot().ring_peak <= 500, "the reader waited for room, mid-frame"
    records = read_dead_letters(tmp_path / "dead.jsonl")
    assert [r["frame"] for r in records] == bad, "each whole, once, in order"
    assert "outside InfluxDB's range" in records[-1]["reason"]
    said = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert said[0].startswith("notifications frame set aside in ") and "invalid JSON" in said[0]
    assert said[-1].startswith(f"set aside {len(bad) - 1:,} more malformed frames")


# --- InfluxDB 1.6 -----------------------------------------------------------------------


async def test_influxdb_16_stores_control_characters_as_sent(
    influxd: Influxd, database: str
) -> None:
    text = f"a{CONTROLS}b"
    sink = InfluxSink(InfluxSettings(url=influxd.url, database=database))
    await sink.open()
    try:
        result = await sink.write([Utterance("c-bad", "u1", "customer", text, 0.9, 1, 2, True, 1)])
    finally:
        await sink.aclose()
    assert result.acknowledged == 1
    [row] = influxd.query("SELECT text FROM transcriptions", db=database)
    assert row["text"] == text
