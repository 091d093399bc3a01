"""Line protocol: equal to influxdb-client's Point, exact milliseconds, stable tiebreaks."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from trio_transcripts.lineproto import (
    NS_PER_MS,
    LineError,
    Schema,
    _encode_any,
    decode,
    encode,
    encode_batch,
    normalise_tag,
    normalise_text,
    tiebreak,
    timestamp_ns,
)
from trio_transcripts.model import Extras, Utterance

# Point is wrong for InfluxDB 1.x on exactly these (see lineproto's docstring); elsewhere the
# two must agree byte for byte.
POINT_DIVERGES = "\t\n\r"
safe_text = st.text(st.characters(codec="utf-8", exclude_characters=POINT_DIVERGES))
safe_tag = safe_text.filter(lambda s: not s.endswith("\\"))

utterances = st.builds(
    Utterance,
    conversation_id=safe_tag,
    utterance_id=safe_tag,
    speaker=safe_tag,
    text=safe_text,
    confidence=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    start_ms=st.integers(-(10**12), 9 * 10**12),
    end_ms=st.integers(-(10**12), 9 * 10**12),
    final=st.booleans(),
    fragments=st.integers(0, 10**6),
    extras=st.lists(
        st.tuples(
            st.sampled_from(["communicationId", "dialect", "engineId"]),
            safe_text | st.integers(0, 2**62),
        ),
        max_size=3,
        unique_by=lambda kv: kv[0],
    ).map(tuple),
    origin=st.sampled_from(["live", "backfill"]),
)


def point_line(u: Utterance, schema: Schema) -> str:
    point = Point(schema.measurement).tag("conversationId", u.conversation_id or None)
    point.tag("origin", u.origin or None)
    point.tag("speaker", u.speaker or None)
    if schema.utterance_id_as_tag:
        point.tag("utteranceId", u.utterance_id or None)
    else:
        point.field("utteranceId", u.utterance_id)
    point.field("text", u.text).field("duration_ms", u.duration_ms).field("final", u.final)
    point.field("fragments", u.fragments)
    if u.confidence is not None:
        point.field("confidence", float(u.confidence))
    for key, value in u.extras:
        point.field(key, value)
    line: str = point.time(timestamp_ns(u), WritePrecision.NS).to_line_protocol()
    return line


@given(utterances, st.booleans())
def test_equal_to_influxdb_client_point(u: Utterance, as_tag: bool) -> None:
    schema = Schema(utterance_id_as_tag=as_tag)
    assert encode(u, schema) == point_line(u, schema)


any_extras = st.lists(
    st.tuples(
        st.sampled_from(["text", "final", "confidence", "utteranceId", "{t}", "a{b}c"]) | safe_text,
        safe_text | st.sampled_from(["{", "}", "{u}"]) | st.integers() | st.booleans(),
    ),
    max_size=4,
).map(tuple)


@given(utterances, any_extras, st.booleans())
def test_the_remembered_layouts_give_the_general_encoders_line(
    u: Utterance, extras: Extras, as_tag: bool
) -> None:
    u = msgspec.structs.replace(u, extras=extras)
    schema = Schema(utterance_id_as_tag=as_tag)
    assert encode(u, schema) == _encode_any(u, schema)


@given(utterances)
def test_timestamp_keeps_the_millisecond_exact(u: Utterance) -> None:
    ts = timestamp_ns(u)
    assert ts // NS_PER_MS == u.start_ms
    assert 0 <= ts % NS_PER_MS == tiebreak(u.utterance_id) < NS_PER_MS
    assert encode(u).endswith(f" {ts}")


def test_tiebreak_is_deterministic_and_spreads() -> None:
    assert tiebreak("5b778cb0") == tiebreak("5b778cb0")
    assert len({tiebreak(f"u{i}") for i in range(1000)}) > 990


def test_known_line() -> None:
    u = Utterance(
        "c 1",
        "u,1",
        "agent=x",
        'say "hi" c:\\dir',
        0.5,
        1000,
        1250,
        True,
        3,
        (("dialect", "en-US"),),
    )
    assert encode(u) == (
        "transcriptions,conversationId=c\\ 1,origin=live,speaker=agent\\=x confidence=0.5,"
        'dialect="en-US",duration_ms=250i,final=true,fragments=3i,'
        'text="say \\"hi\\" c:\\\\dir",utteranceId="u,1" ' + str(timestamp_ns(u))
    )


def test_empty_tag_values_are_omitted() -> None:
    u = Utterance("", "u", "", "t", None, 0, 0, False, 1, origin="")
    assert encode(u).startswith("transcriptions duration_ms=0i,")


def test_documented_normalisations() -> None:
    assert normalise_text("a\r\nb\rc\nd") == "a b c d"
    assert normalise_tag("ends\\") == "ends\\ "
    assert normalise_tag("mid\\dle") == "mid\\dle"
    u = Utterance("c", "u", "tab\there", "line1\nline2", None, 0, 0, True, 1)
    line = encode(u)
    assert "\n" not in line and 'text="line1 line2"' in line and "speaker=tab\there" in line


def test_batch_is_newline_terminated_utf8() -> None:
    us = [Utterance("c", f"u{i}", "s", "日本語 😀", 1.0, i, i, True, 1) for i in range(3)]
    body = encode_batch(us)
    assert body.decode("utf-8").count("\n") == 3 and body.endswith(b"\n")
    assert "confidence=1," in body.decode()


@given(
    utterances,
    st.booleans(),
    st.text(),
    st.text().filter(bool),
)
def test_decode_reads_back_what_encode_wrote(
    u: Utterance, as_tag: bool, text: str, speaker: str
) -> None:
    u = msgspec.structs.replace(u, text=text, speaker=speaker)
    point = decode(encode(u, Schema(utterance_id_as_tag=as_tag)))
    assert point.measurement == "transcriptions"
    assert point.timestamp_ns == timestamp_ns(u)
    values = {**point.tags, **point.fields}
    assert values["text"] == normalise_text(u.text)
    if as_tag:  # an empty tag value is not written
        assert values.get("utteranceId", "") == normalise_tag(u.utterance_id)
    else:
        assert values["utteranceId"] == normalise_text(u.utterance_id)
    assert values.get("conversationId", "") == normalise_tag(u.conversation_id)
    assert values["speaker"] == normalise_tag(u.speaker)
    assert values["final"] is u.final and values["duration_ms"] == u.duration_ms
    if u.confidence is not None and math.isfinite(u.confidence):
        assert values["confidence"] == float(u.confidence)


@pytest.mark.parametrize(
    "line", ["", "m", "m x=1", 'm x="open 1', "m,t= x=1 1", "m x=zz 1", "m x=1 notanumber"]
)
def test_decode_refuses_what_is_not_line_protocol(line: str) -> None:
    with pytest.raises(LineError):
        decode(line)
