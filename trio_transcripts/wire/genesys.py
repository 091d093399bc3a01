"""Genesys Cloud Notifications frames -> typed events. Pure; never raises on input.

One WebSocket text frame is one envelope ``{"topicName": ..., "eventBody": ...}``, or a reply
``{"result": "200", "status": "subscribed"}`` to a request sent over the socket. The schema of
``v2.conversations.{id}.transcription`` is the SDKs' ``TranscriptionTopicTranscriptionMessage``
(``PureCloudPlatformClientV2``'s model of that name), in which every field is optional.

Times: the platform gives offsets, not instants. We take
``start = sessionStartTimeMs + offsetMs`` and ``end = start + durationMs`` (falling back to
``transcriptionStartTimeMs`` when the session start is absent) and keep both raw bases as
extras, since which base Genesys means is not documented and may need correcting later.

Speaker: the transcript's ``channel`` says who spoke. INTERNAL is the agent side, EXTERNAL
the customer, BOTH a mixed channel; anything else is ``unknown``.
"""

from __future__ import annotations

import enum
import functools
import re
from typing import Any

import msgspec

from ..model import UNKNOWN_SPEAKER, Extras, Fragment, Ignored, Malformed, excerpt_of
from . import schema
from .frames import DEFAULT_MAX_FRAME_BYTES, FieldReader, JsonObject, load_object
from .instants import MAX_EPOCH_MS, MIN_EPOCH_MS, out_of_range

TRANSCRIPTION_TOPIC = re.compile(r"^v2\.conversations\.([^.\s]+)\.transcription$")
QUEUE_CONVERSATIONS_TOPIC = re.compile(r"^v2\.routing\.queues\.([^.\s]+)\.conversations$")
HEARTBEAT_TOPIC = "channel.metadata"
SOCKET_CLOSING_TOPIC = "v2.system.socket_closing"


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


def queue_conversations_topic(queue_id: str) -> str:
    return f"v2.routing.queues.{queue_id}.conversations"


class SessionStatus(enum.Enum):
    UNKNOWN = "UNKNOWN"
    SESSION_ONGOING = "SESSION_ONGOING"
    SESSION_ENDED = "SESSION_ENDED"


_STATUS_OF_NAME = {status.value: status for status in SessionStatus}

SPEAKER_OF_CHANNEL = {"INTERNAL": "agent", "EXTERNAL": "customer", "BOTH": "both"}
"""Genesys transcript channel -> our speaker name; any other channel is ``unknown``."""

EXTRA_KEYS = ("communicationId", "dialect", "engineProvider", "engineId", "engineName")


@functools.lru_cache(maxsize=4096)
def _conversation_of(topic: str) -> str | None:
    """The conversation id of a transcription topic (remembered: a call's frames share it)."""
    match = TRANSCRIPTION_TOPIC.match(topic)
    return match.group(1) if match is not None else None


@functools.lru_cache(maxsize=4096)
def _extras(
    communication_id: str | None,
    dialect: str | None,
    engine_provider: str | None,
    engine_id: str | None,
    engine_name: str | None,
    session_start: int | None,
    transcription_start: int | None,
) -> Extras:
    """A fragment's extras: the ``EXTRA_KEYS`` that are set, then the raw time bases.

    The same for every transcript of a call, so made once per call (and one tuple shared by
    all its fragments and utterances) rather than once a frame.
    """
    named = (communication_id, dialect, engine_provider, engine_id, engine_name)
    extras: list[tuple[str, str | int]] = [
        (key, value) for key, value in zip(EXTRA_KEYS, named, strict=True) if value
    ]
    if session_start is not None:
        extras.append(("sessionStartTimeMs", session_start))
    if transcription_start is not None:
        extras.append(("transcriptionStartTimeMs", transcription_start))
    return tuple(extras)


class Transcription(msgspec.Struct, frozen=True, gc=False):
    """One ``v2.conversations.{id}.transcription`` message.

    ``fragments`` holds one fragment per readable transcript, in message order. A transcript
    that could not be read is not silently dropped: its reason is in ``problems``. A message
    with neither is a keepalive (sent at session start and every 5 minutes).
    """

    conversation_id: str
    communication_id: str | None
    session_start_ms: int | None
    transcription_start_ms: int | None
    status: SessionStatus | None
    event_time: str | None
    fragments: tuple[Fragment, ...]
    problems: tuple[str, ...] = ()

    @property
    def keepalive(self) -> bool:
        return not self.fragments and not self.problems

    @property
    def session_ended(self) -> bool:
        return self.status is SessionStatus.SESSION_ENDED


class Heartbeat(msgspec.Struct, frozen=True, gc=False):
    """``channel.metadata`` "WebSocket Heartbeat", about every 30 s."""


class Pong(msgspec.Struct, frozen=True, gc=False):
    """``channel.metadata`` "pong": the reply to our ``{"message":"ping"}``."""


class SocketClosing(msgspec.Struct, frozen=True, gc=False):
    """``v2.system.socket_closing``: about a minute to open a new socket and drop this one."""

    channel_id: str | None
    reason: str | None
    message: str | None


class SystemNotice(msgspec.Struct, frozen=True, gc=False):
    """Any other ``v2.system.*`` message (no_longer_subscribed, token_revoked, ...)."""

    topic: str
    system_topic_type: str | None
    reason: str | None
    message: str | None


class QueueConversation(msgspec.Struct, frozen=True, gc=False):
    """A ``v2.routing.queues.{id}.conversations`` event: a conversation on a watched queue."""

    queue_id: str
    conversation_id: str


class SubscriptionReply(msgspec.Struct, frozen=True, gc=False):
    """``{"result": "<code>", "status": ...}``: the answer to a request sent on the socket."""

    code: int
    status: str | None
    message: str | None
    correlation_id: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


class ChannelGone(msgspec.Struct, frozen=True, gc=False):
    """A ``result`` 404: the channel expired, was replaced, or its token expired."""

    message: str | None


NotificationEvent = (
    Transcription
    | Heartbeat
    | Pong
    | SocketClosing
    | SystemNotice
    | QueueConversation
    | SubscriptionReply
    | ChannelGone
    | Ignored
    | Malformed
)


def parse_notification(
    frame: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, decorated: bool = False
) -> NotificationEvent:
    """Parse one Notifications WebSocket frame: a well-formed transcription message by the
    fast path (:func:`strict_transcription`), anything else by :func:`read_notification`.

    ``decorated``: a fragment's text is the alternative's ``decoratedTranscript`` where it
    has one (not empty), else its ``transcript`` (the default: see the README's schema)."""
    event = strict_transcription(frame, max_bytes=max_bytes, decorated=decorated)
    if event is not None:
        return event
    return read_notification(frame, max_bytes=max_bytes, decorated=decorated)


def strict_transcription(
    frame: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, decorated: bool = False
) -> Transcription | None:
    """A transcription message decoded by its schema (:mod:`.schema`), or ``None`` when the
    frame is anything else or anything about it is off; then :func:`read_notification`
    says what. Where it gives an event, it is the one ``read_notification`` gives
    (``tests/test_wire_genesys.py`` holds the property). Never raises."""
    envelope = schema.decode(schema.envelope_decoder, frame, max_bytes)
    if envelope is None:
        return None
    topic, body = envelope.topic_name, envelope.event_body
    if topic is None or body is None or (conversation_id := _conversation_of(topic)) is None:
        return None
    communication_id = body.communication_id
    session_start = body.session_start_time_ms
    transcription_start = body.transcription_start_time_ms
    for base in (session_start, transcription_start):
        if base is not None and not MIN_EPOCH_MS <= base <= MAX_EPOCH_MS:
            return None
    status: SessionStatus | None = None
    if body.status is not None and body.status.status is not None:
        status = _STATUS_OF_NAME.get(body.status.status, SessionStatus.UNKNOWN)
    base = session_start if session_start is not None else transcription_start
    fragments: list[Fragment] = []
    for item in body.transcripts or ():
        if not item.utterance_id:
            return None
        extras = _extras(
            communication_id,
            item.dialect,
            item.engine_provider,
            item.engine_id,
            item.engine_name,
            session_start,
            transcription_start,
        )
        text, confidence, offset, duration = "", None, None, None
        if item.alternatives:
            first = item.alternatives[0]
            text = (decorated and first.decorated_transcript) or first.transcript or ""
            confidence, offset, duration = first.confidence, first.offset_ms, first.duration_ms
        start = base + offset if base is not None and offset is not None else None
        end = start + max(duration, 0) if start is not None and duration is not None else None
        if start is not None and not (
            MIN_EPOCH_MS <= start <= MAX_EPOCH_MS and (end is None or end <= MAX_EPOCH_MS)
        ):
            return None
        fragments.append(
            Fragment(
                conversation_id=conversation_id,
                utterance_id=item.utterance_id,
                speaker=SPEAKER_OF_CHANNEL.get(item.channel or "", UNKNOWN_SPEAKER),
                text=text,
                confidence=confidence,
                start_ms=start,
                end_ms=end,
                is_final=bool(item.is_final),
                extras=extras,
            )
        )
    return Transcription(
        conversation_id=conversation_id,
        communication_id=communication_id,
        session_start_ms=session_start,
        transcription_start_ms=transcription_start,
        status=status,
        event_time=body.event_time,
        fragments=tuple(fragments),
    )


def read_notification(
    frame: str | bytes, *, max_bytes: int = DEFAULT_MAX_FRAME_BYTES, decorated: bool = False
) -> NotificationEvent:
    """The tolerant parser: any frame, to an event, a precise ``Malformed``, or ``problems``
    for the transcripts that cannot be read."""
    obj = load_object(frame, max_bytes=max_bytes)
    if isinstance(obj, Malformed):
        return obj
    envelope = FieldReader(obj)
    topic = envelope.text("topicName")
    if topic is None:
        if "result" in obj:
            return _result(envelope, frame)
        if envelope.errors:
            return Malformed("; ".join(envelope.errors), excerpt_of(frame))
        return Ignored("message has neither topicName nor result")
    body = envelope.mapping("eventBody")
    if envelope.errors:
        return Malformed("; ".join(envelope.errors), excerpt_of(frame))
    body = body if body is not None else {}

    if match := TRANSCRIPTION_TOPIC.match(topic):
        return _transcription(match.group(1), body, frame, decorated)
    if topic == HEARTBEAT_TOPIC:
        message = body.get("message")
        if message == "WebSocket Heartbeat":
            return Heartbeat()
        if message == "pong":
            return Pong()
        return Ignored(f"channel.metadata with message {message!r}")
    if match := QUEUE_CONVERSATIONS_TOPIC.match(topic):
        return _queue_conversation(match.group(1), body, frame)
    if topic.startswith("v2.system."):
        r = FieldReader(body, "eventBody")
        fields = (r.text("channelId"), r.text("reason"), r.text("message"))
        if topic == SOCKET_CLOSING_TOPIC:
            return SocketClosing(*fields) if not r.errors else _malformed(r.errors, frame)
        return SystemNotice(topic, r.text("systemTopicType"), fields[1], fields[2])
    return Ignored(f"unknown topic {topic!r}")


def _malformed(errors: list[str], frame: str | bytes) -> Malformed:
    return Malformed("; ".join(errors), excerpt_of(frame))


def _result(
    envelope: FieldReader, frame: str | bytes
) -> SubscriptionReply | ChannelGone | Malformed:
    raw = envelope.obj.get("result")
    code: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        code = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit():
        code = int(raw)
    if code is None:
        return Malformed(f"result {raw!r} is not a status code", excerpt_of(frame))
    message = envelope.text("message")
    status = envelope.text("status")
    correlation_id = envelope.text("correlationId")
    if envelope.errors:
        return _malformed(envelope.errors, frame)
    if code == 404:
        return ChannelGone(message)
    return SubscriptionReply(code, status, message, correlation_id)


def _queue_conversation(
    queue_id: str, body: JsonObject, frame: str | bytes
) -> QueueConversation | Malformed:
    r = FieldReader(body, "eventBody")
    conversation_id = r.text("id")
    if r.errors:
        return _malformed(r.errors, frame)
    if not conversation_id:
        return Malformed("queue conversation event without eventBody.id", excerpt_of(frame))
    return QueueConversation(queue_id, conversation_id)


def _transcription(
    topic_conversation_id: str, body: JsonObject, frame: str | bytes, decorated: bool
) -> Transcription | Malformed:
    r = FieldReader(body, "eventBody")
    communication_id = r.text("communicationId")
    session_start = r.integer("sessionStartTimeMs")
    transcription_start = r.integer("transcriptionStartTimeMs")
    event_time = r.text("eventTime")
    status_obj = r.mapping("status")
    transcripts = r.array("transcripts")
    status: SessionStatus | None = None
    if status_obj is not None:
        raw_status = FieldReader(status_obj, "eventBody.status")
        name = raw_status.text("status")
        r.errors.extend(raw_status.errors)
        if name is not None:
            status = _STATUS_OF_NAME.get(name, SessionStatus.UNKNOWN)
    if r.errors:
        return _malformed(r.errors, frame)
    bad_bases = [
        f"eventBody.{key}: {why}: its transcripts cannot be stored"
        for key, base in (
            ("sessionStartTimeMs", session_start),
            ("transcriptionStartTimeMs", transcription_start),
        )
        if base is not None and (why := out_of_range(base)) is not None
    ]
    if bad_bases:
        # A time base is stored with each row (the extras) and starts them: beyond InfluxDB's
        # range, every transcript is unreadable; the frame is set aside (``router.py``), and
        # what the message says of the session (its end) still counts.
        return Transcription(
            conversation_id=topic_conversation_id,
            communication_id=communication_id,
            session_start_ms=None,
            transcription_start_ms=None,
            status=status,
            event_time=event_time,
            fragments=(),
            problems=tuple(bad_bases),
        )

    fragments: list[Fragment] = []
    problems: list[str] = []
    for index, item in enumerate(transcripts or ()):
        parsed = _fragment(
            item,
            index,
            topic_conversation_id,
            communication_id,
            session_start,
            transcription_start,
            decorated,
        )
        if isinstance(parsed, Fragment):
            fragments.append(parsed)
        else:
            problems.append(parsed)
    return Transcription(
        conversation_id=topic_conversation_id,
        communication_id=communication_id,
        session_start_ms=session_start,
        transcription_start_ms=transcription_start,
        status=status,
        event_time=event_time,
        fragments=tuple(fragments),
        problems=tuple(problems),
    )


def _fragment(
    item: Any,
    index: int,
    conversation_id: str,
    communication_id: str | None,
    session_start: int | None,
    transcription_start: int | None,
    decorated: bool,
) -> Fragment | str:
    """One ``TranscriptResult`` as a fragment, or a one-line reason it cannot be one."""
    where = f"eventBody.transcripts[{index}]"
    if not isinstance(item, dict):
        return f"{where}: expected object, got {type(item).__name__}"
    r = FieldReader(item, where)
    utterance_id = r.text("utteranceId")
    is_final = r.flag("isFinal")
    channel = r.text("channel")
    alternatives = r.array("alternatives")
    named = [r.text(key) for key in EXTRA_KEYS[1:]]
    base = session_start if session_start is not None else transcription_start
    text, confidence, offset, duration = "", None, None, None
    if alternatives:
        first = alternatives[0]
        if isinstance(first, dict):
            alt = FieldReader(first, f"{where}.alternatives[0]")
            text = alt.text("transcript") or ""
            if decorated:
                text = alt.text("decoratedTranscript") or text
            confidence = alt.number("confidence")
            offset = alt.integer("offsetMs")
            duration = alt.integer("durationMs")
            r.errors.extend(alt.errors)
        else:
            r.errors.append(f"{where}.alternatives[0]: expected object, got {type(first).__name__}")
    if not utterance_id:
        r.errors.append(f"{where}: no utteranceId")
    start = base + offset if base is not None and offset is not None else None
    end = start + max(duration, 0) if start is not None and duration is not None else None
    if start is not None and (problem := out_of_range(start) or out_of_range(end or start)):
        r.errors.append(f"{where}: {problem}")
    if r.errors:
        return "; ".join(r.errors)
    assert utterance_id is not None
    return Fragment(
        conversation_id=conversation_id,
        utterance_id=utterance_id,
        speaker=SPEAKER_OF_CHANNEL.get(channel or "", UNKNOWN_SPEAKER),
        text=text,
        confidence=confidence,
        start_ms=start,
        end_ms=end,
        is_final=bool(is_final),
        extras=_extras(communication_id, *named, session_start, transcription_start),
    )
