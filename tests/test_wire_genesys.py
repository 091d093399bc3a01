"""Genesys Notifications frames: every message type, bad input, and generated round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import fast_path_agrees
from trio_transcripts.model import Fragment, Ignored, Malformed
from trio_transcripts.wire.genesys import (
    SPEAKER_OF_CHANNEL,
    ChannelGone,
    Heartbeat,
    Pong,
    QueueConversation,
    SessionStatus,
    SocketClosing,
    SubscriptionReply,
    SystemNotice,
    Transcription,
    parse_notification,
    read_notification,
    strict_transcription,
)

# A real payload from Genesys's documentation of the transcription topic, in its envelope.
REAL = {
    "topicName": "v2.conversations.97b9dcb3.transcription",
    "version": "2",
    "eventBody": {
        "eventTime": "2026-03-19T22:04:48.128Z",
        "conversationId": "97b9dcb3",
        "communicationId": "7dd98c4f",
        "sessionStartTimeMs": 1773957594383,
        "transcriptionStartTimeMs": 1773957594336,
        "transcripts": [
            {
                "utteranceId": "5b778cb0",
                "isFinal": True,
                "channel": "EXTERNAL",
                "alternatives": [
                    {
                        "confidence": 0.658,
                        "offsetMs": 278620,
                        "durationMs": 12480,
                        "transcript": "raw text",
                        "decoratedTranscript": "normalized text",
                    }
                ],
                "engineProvider": "GENESYS",
                "engineId": "r2d2",
            }
        ],
    },
    "metadata": {"CorrelationId": "x"},
}


def test_real_payload() -> None:
    event = parse_notification(json.dumps(REAL))
    assert isinstance(event, Transcription)
    assert event.conversation_id == "97b9dcb3"
    assert event.session_start_ms == 1773957594383
    assert event.transcription_start_ms == 1773957594336
    (fragment,) = event.fragments
    assert fragment == Fragment(
        conversation_id="97b9dcb3",
        utterance_id="5b778cb0",
        speaker="customer",
        text="raw text",
        confidence=0.658,
        start_ms=1773957594383 + 278620,
        end_ms=1773957594383 + 278620 + 12480,
        is_final=True,
        extras=(
            ("communicationId", "7dd98c4f"),
            ("engineProvider", "GENESYS"),
            ("engineId", "r2d2"),
            ("sessionStartTimeMs", 1773957594383),
            ("transcriptionStartTimeMs", 1773957594336),
        ),
    )
    assert parse_notification(json.dumps(REAL).encode()) == event


def test_keepalive_and_session_end() -> None:
    keepalive = parse_notification(
        '{"topicName":"v2.conversations.c1.transcription",'
        '"eventBody":{"status":{"status":"SESSION_ONGOING"},"transcripts":[]}}'
    )
    assert isinstance(keepalive, Transcription)
    assert keepalive.keepalive
    assert keepalive.status is SessionStatus.SESSION_ONGOING
    ended = parse_notification(
        '{"topicName":"v2.conversations.c1.transcription",'
        '"eventBody":{"status":{"status":"SESSION_ENDED","offsetMs":5}}}'
    )
    assert isinstance(ended, Transcription)
    assert ended.session_ended
    odd = parse_notification(
        '{"topicName":"v2.conversations.c1.transcription","eventBody":{"status":{"status":"NEW"}}}'
    )
    assert isinstance(odd, Transcription)
    assert odd.status is SessionStatus.UNKNOWN


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            '{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}',
            Heartbeat(),
        ),
        ('{"topicName":"channel.metadata","eventBody":{"message":"pong"}}', Pong()),
        (
            '{"topicName":"v2.system.socket_closing","eventBody":{"channelId":"ch","message":"m"}}',
            SocketClosing("ch", None, "m"),
        ),
        (
            '{"topicName":"v2.system.no_longer_subscribed","eventBody":'
            '{"systemTopicType":"no_longer_subscribed","reason":"another_channel_subscribed"}}',
            SystemNotice(
                "v2.system.no_longer_subscribed",
                "no_longer_subscribed",
                "another_channel_subscribed",
                None,
            ),
        ),
        (
            '{"topicName":"v2.routing.queues.q1.conversations","eventBody":{"id":"conv-9"}}',
            QueueConversation("q1", "conv-9"),
        ),
        (
            '{"result":"200","status":"subscribed","correlationId":"c"}',
            SubscriptionReply(200, "subscribed", None, "c"),
        ),
        ('{"result":"404","message":"channel not found"}', ChannelGone("channel not found")),
        (
            '{"result":400,"status":"failure","message":"too many topics"}',
            SubscriptionReply(400, "failure", "too many topics", None),
        ),
    ],
)
def test_message_types(frame: str, expected: object) -> None:
    assert parse_notification(frame) == expected


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("not json", "invalid JSON"),
        ("[1,2]", "expected a JSON object, got list"),
        ("42", "expected a JSON object, got int"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"topicName":"channel.metadata","eventBody":{"x":NaN}}', "invalid JSON"),
        ('{"topicName":5}', "topicName: expected string, got int"),
        (
            '{"topicName":"v2.conversations.c.transcription","eventBody":[]}',
            "eventBody: expected object, got list",
        ),
        (
            '{"topicName":"v2.conversations.c.transcription",'
            '"eventBody":{"sessionStartTimeMs":"soon"}}',
            "sessionStartTimeMs: expected integer",
        ),
        (
            '{"topicName":"v2.routing.queues.q.conversations","eventBody":{}}',
            "without eventBody.id",
        ),
        ('{"result":"ok"}', "is not a status code"),
        ("[" * 100_000, "nests too deeply"),
    ],
)
def test_malformed_frames_say_why(frame: str | bytes, reason: str) -> None:
    event = parse_notification(frame)
    assert isinstance(event, Malformed)
    assert reason in event.reason


def test_oversized_frame_is_refused_before_parsing() -> None:
    event = parse_notification('{"topicName":"' + "x" * (10 << 20) + '"}')
    assert isinstance(event, Malformed)
    assert "exceeds" in event.reason
    assert len(event.excerpt) < 200


def test_unknown_topics_are_ignored_not_malformed() -> None:
    assert isinstance(parse_notification('{"topicName":"v2.users.u.presence"}'), Ignored)
    assert isinstance(parse_notification('{"hello":"world"}'), Ignored)


def test_one_bad_transcript_keeps_the_good_ones_and_says_why() -> None:
    body = {
        "sessionStartTimeMs": 1000,
        "transcripts": [
            {"isFinal": True, "alternatives": [{"transcript": "no id"}]},
            {"utteranceId": "u2", "isFinal": True, "alternatives": [{"transcript": "ok"}]},
            {"utteranceId": "u3", "alternatives": [{"confidence": "high"}]},
            "junk",
        ],
    }
    event = parse_notification(
        json.dumps({"topicName": "v2.conversations.c.transcription", "eventBody": body})
    )
    assert isinstance(event, Transcription)
    assert [f.utterance_id for f in event.fragments] == ["u2"]
    assert len(event.problems) == 3
    assert "no utteranceId" in event.problems[0]
    assert "confidence: expected number, got str" in event.problems[1]
    assert "expected object, got str" in event.problems[2]


def test_missing_optional_fields_are_tolerated() -> None:
    event = parse_notification(
        '{"topicName":"v2.conversations.c.transcription",'
        '"eventBody":{"transcripts":[{"utteranceId":"u"}]}}'
    )
    assert isinstance(event, Transcription)
    assert event.fragments == (Fragment("c", "u", "unknown", "", None, None, None, False, ()),)


ids = st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=12)
ms = st.integers(0, 2**41)
channels = st.sampled_from(["INTERNAL", "EXTERNAL", "BOTH", "UNKNOWN", "SOMETHING_NEW"])


@st.composite
def transcription_messages(draw: st.DrawFn) -> tuple[dict[str, Any], list[Fragment]]:
    """A valid message in the official schema, and the fragments it must parse to."""
    conversation = draw(st.text("abcdef0123456789-", min_size=1, max_size=36))
    session_start = draw(st.none() | ms)
    transcripts: list[dict[str, Any]] = []
    expected: list[Fragment] = []
    for _ in range(draw(st.integers(0, 4))):
        utterance, final, channel = draw(ids), draw(st.booleans()), draw(channels)
        text = draw(st.text(max_size=40))
        confidence = draw(st.none() | st.floats(0, 1))
        offset, duration = (
            draw(st.none() | st.integers(0, 10**7)),
            draw(st.none() | st.integers(0, 10**6)),
        )
        alternative: dict[str, Any] = {"transcript": text}
        if confidence is not None:
            alternative["confidence"] = confidence
        if offset is not None:
            alternative["offsetMs"] = offset
        if duration is not None:
            alternative["durationMs"] = duration
        transcripts.append(
            {
                "utteranceId": utterance,
                "isFinal": final,
                "channel": channel,
                "alternatives": [alternative, {"transcript": "second best"}],
            }
        )
        start = None if session_start is None or offset is None else session_start + offset
        end = None if start is None or duration is None else start + duration
        extras = () if session_start is None else (("sessionStartTimeMs", session_start),)
        expected.append(
            Fragment(
                conversation,
                utterance,
                SPEAKER_OF_CHANNEL.get(channel, "unknown"),
                text,
                confidence,
                start,
                end,
                final,
                extras,
            )
        )
    body: dict[str, Any] = {"transcripts": transcripts}
    if session_start is not None:
        body["sessionStartTimeMs"] = session_start
    topic = f"v2.conversations.{conversation}.transcription"
    return {"topicName": topic, "eventBody": body}, expected


@given(transcription_messages())
def test_generated_messages_parse_back_exactly(case: tuple[dict[str, Any], list[Fragment]]) -> None:
    message, expected = case
    event = parse_notification(json.dumps(message, ensure_ascii=False))
    assert isinstance(event, Transcription)
    assert list(event.fragments) == expected
    assert event.problems == ()


@given(
    transcription_messages(), st.sampled_from([{}, {"communicationId": "k", "dialect": "en-US"}])
)
def test_the_fast_path_gives_the_tolerant_parsers_event_for_every_valid_message(
    case: tuple[dict[str, Any], list[Fragment]], extra: dict[str, str]
) -> None:
    message, _ = case
    message["eventBody"].update(extra)
    for transcript in message["eventBody"]["transcripts"]:
        transcript.update(extra)
    frame = json.dumps(message, ensure_ascii=False)
    fast = strict_transcription(frame)
    assert fast is not None
    assert fast == read_notification(frame) == parse_notification(frame)


def agrees_where_it_answers(frame: str | bytes) -> None:
    """The fast path never raises, and any event it gives is the tolerant parser's."""
    for decorated in (False, True):
        fast = strict_transcription(frame, decorated=decorated)
        assert fast_path_agrees(fast, read_notification(frame, decorated=decorated))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    transcription_messages(),
    st.lists(st.none() | st.text(max_size=20) | st.integers(), min_size=4, max_size=4),
)
def test_decorated_text_where_asked_for_and_given_else_the_transcript(
    case: tuple[dict[str, Any], list[Fragment]], decorations: list[Any]
) -> None:
    message, expected = case
    transcripts = message["eventBody"]["transcripts"]
    for transcript, decoration in zip(transcripts, decorations, strict=False):
        if decoration is not None:
            transcript["alternatives"][0]["decoratedTranscript"] = decoration
    frame = json.dumps(message, ensure_ascii=False)
    raw = parse_notification(frame)
    assert isinstance(raw, Transcription) and list(raw.fragments) == expected
    event = parse_notification(frame, decorated=True)
    assert event == read_notification(frame, decorated=True)
    agrees_where_it_answers(frame)
    assert isinstance(event, Transcription)
    readable = [
        (t, f)
        for t, f in zip(transcripts, expected, strict=True)
        if not isinstance(t["alternatives"][0].get("decoratedTranscript", ""), int)
    ]
    assert [f.text for f in event.fragments] == [
        t["alternatives"][0].get("decoratedTranscript") or f.text for t, f in readable
    ]
    assert len(event.problems) == len(transcripts) - len(readable), "a non-string is a problem"


@given(st.binary() | st.text())
def test_never_raises_on_arbitrary_frames(frame: str | bytes) -> None:
    parse_notification(frame)
    agrees_where_it_answers(frame)


@given(
    st.sampled_from(
        [
            "v2.conversations.c.transcription",
            "channel.metadata",
            "v2.system.socket_closing",
            "v2.routing.queues.q.conversations",
            None,
        ]
    ),
    json_values,
    json_values,
)
def test_never_raises_on_arbitrary_envelopes(topic: str | None, body: Any, result: Any) -> None:
    envelope: dict[str, Any] = {"eventBody": body}
    if topic is None:
        envelope["result"] = result
    else:
        envelope["topicName"] = topic
    parse_notification(json.dumps(envelope))
    agrees_where_it_answers(json.dumps(envelope))
    if isinstance(body, dict):
        transcript = dict(body)
        body["transcripts"] = [transcript, {"utteranceId": "u", "alternatives": [transcript]}]
        frame = json.dumps({"topicName": "v2.conversations.c.transcription", "eventBody": body})
        parse_notification(frame)
        agrees_where_it_answers(frame)
