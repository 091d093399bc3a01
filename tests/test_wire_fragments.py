"""Fragment-stream frames and exact instants."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import fast_path_agrees
from trio_transcripts.model import Fragment, Malformed
from trio_transcripts.wire.fragments import parse_fragment, read_fragment, strict_fragment
from trio_transcripts.wire.instants import (
    MAX_EPOCH_MS,
    MIN_EPOCH_MS,
    _common_form,
    exact_instant,
    iso_of,
    parse_instant,
)


def test_reference_design_fragment() -> None:
    frame = json.dumps(
        {
            "utteranceId": "u1",
            "speaker": "agent",
            "text": "Hello, ",
            "confidence": 0.91,
            "startTime": "2026-03-19T22:04:48.128Z",
            "endTime": 1773957890000,
            "isFinal": False,
        }
    )
    assert parse_fragment(frame, conversation_id="c1") == Fragment(
        "c1", "u1", "agent", "Hello, ", 0.91, 1773957888128, 1773957890000, False
    )


def test_defaults_and_own_conversation_id() -> None:
    event = parse_fragment(
        '{"utteranceId":"u","isFinal":true,"conversationId":"c9"}', conversation_id="c1"
    )
    assert event == Fragment("c9", "u", "unknown", "", None, None, None, True)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"text":"hi"}', "missing utteranceId"),
        ('{"utteranceId":""}', "missing utteranceId"),
        ('{"utteranceId":7}', "utteranceId: expected string, got int"),
        ('{"utteranceId":"u","isFinal":"yes"}', "isFinal: expected boolean, got str"),
        ('{"utteranceId":"u","confidence":true}', "confidence: expected number, got bool"),
        ('{"utteranceId":"u","startTime":"yesterday"}', "neither ISO-8601 nor epoch"),
        ('{"utteranceId":"u","startTime":99999999999999999}', "outside InfluxDB's range"),
        ('{"utteranceId":"u","confidence":Infinity}', "invalid JSON"),
        ('["u"]', "expected a JSON object"),
    ],
)
def test_malformed_fragments_say_why(frame: str, reason: str) -> None:
    event = parse_fragment(frame, conversation_id="c")
    assert isinstance(event, Malformed)
    assert reason in event.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-19T22:04:48.128Z", 1773957888128),
        ("2026-03-20T00:04:48.128+02:00", 1773957888128),
        ("2026-03-19T16:34:48.1289999-05:30", 1773957888128),
        ("2026-03-19T22:04:48.128", 1773957888128),  # no offset: UTC, never local time
        ("1773957888128", 1773957888128),
        (1773957888128, 1773957888128),
        (1773957888128.9, 1773957888128),
        ("1969-12-31T23:59:59.9995Z", -1),  # floors, never rounds into the next ms
        (True, "expected a time"),
    ],
)
def test_instants(value: object, expected: int | str) -> None:
    result = parse_instant(value)
    if isinstance(expected, str):
        assert isinstance(result, str)
        assert expected in result
    else:
        assert result == expected


aware = st.datetimes(
    min_value=datetime(1700, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
)


@given(aware)
def test_iso_and_epoch_forms_of_one_instant_agree(instant: datetime) -> None:
    instant = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    epoch_ms = (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    assert parse_instant(instant.isoformat()) == epoch_ms
    assert parse_instant(epoch_ms) == epoch_ms
    assert parse_instant(str(epoch_ms)) == epoch_ms
    assert parse_instant(iso_of(epoch_ms)) == epoch_ms


@given(st.integers(-(10**12), MAX_EPOCH_MS))
def test_iso_of_round_trips(ms: int) -> None:
    if ms > 253402300799999:  # datetime stops at year 9999
        return
    assert parse_instant(iso_of(ms)) == ms


@given(
    utterance=st.text(min_size=1),
    speaker=st.text(min_size=1),
    text=st.text(),
    confidence=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    start=st.none() | st.integers(0, 2**42),
    final=st.booleans(),
)
def test_generated_fragments_parse_back_exactly(
    utterance: str,
    speaker: str,
    text: str,
    confidence: float | None,
    start: int | None,
    final: bool,
) -> None:
    frame = json.dumps(
        {
            "utteranceId": utterance,
            "speaker": speaker,
            "text": text,
            "confidence": confidence,
            "startTime": start,
            "endTime": None if start is None else iso_of(start + 5),
            "isFinal": final,
        }
    )
    assert strict_fragment(frame, conversation_id="c") == read_fragment(frame, conversation_id="c")
    assert parse_fragment(frame, conversation_id="c") == Fragment(
        "c",
        utterance,
        speaker,
        text,
        confidence,
        start,
        None if start is None else start + 5,
        final,
    )


@given(st.binary() | st.text())
def test_never_raises_on_arbitrary_frames(frame: str | bytes) -> None:
    parse_fragment(frame, conversation_id="c")
    agrees_where_it_answers(frame)


def agrees_where_it_answers(frame: str | bytes) -> None:
    """The fast path never raises, and any fragment it gives is the tolerant parser's."""
    fast = strict_fragment(frame, conversation_id="c")
    assert fast_path_agrees(fast, read_fragment(frame, conversation_id="c"))


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "utteranceId",
                "speaker",
                "text",
                "confidence",
                "startTime",
                "endTime",
                "isFinal",
                "conversationId",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text()
        | st.lists(st.integers(), max_size=2),
    )
)
def test_never_raises_on_arbitrary_field_values(fields: dict[str, object]) -> None:
    parse_fragment(json.dumps(fields), conversation_id="c")
    agrees_where_it_answers(json.dumps(fields))


common_forms = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{3})?Z\Z"
) | st.from_regex(r"\A[0-9]{1,25}\Z")


@given(common_forms | st.text(max_size=30) | st.integers() | st.floats() | st.none())
def test_the_instant_fast_path_agrees_with_the_exact_converter(value: object) -> None:
    assert parse_instant(value) == exact_instant(value)


@given(st.integers(MIN_EPOCH_MS, MAX_EPOCH_MS), st.booleans())
def test_common_iso_forms_of_every_storable_instant_take_the_fast_path(
    ms: int, with_fraction: bool
) -> None:
    text = iso_of(ms) if with_fraction else iso_of(ms - ms % 1000)[:19] + "Z"
    if len(text) in (20, 24):  # years 1677-2262: always four digits
        assert _common_form(text) == (ms if with_fraction else ms - ms % 1000)


def test_number_overflowing_a_double_is_malformed_not_a_crash() -> None:
    # Found by the fuzzer: json turns 17e739257890000 into inf, which no int can hold.
    event = parse_fragment('{"utteranceId":"u","endTime":17e739257890000}', conversation_id="c")
    assert isinstance(event, Malformed)
    assert "overflows a double" in event.reason
    event = parse_fragment('{"utteranceId":"u","confidence":-1e400}', conversation_id="c")
    assert isinstance(event, Malformed)
