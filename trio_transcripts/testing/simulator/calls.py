"""Synthetic calls: deterministic scripts of utterances, and the frames that carry them.

Pure. Frames are built from the official schema (``TranscriptionTopicTranscriptionMessage``
and the reference design's fragment object) with ``json.dumps`` on plain dicts, not with the
worker's own ``wire`` module, so a misreading of the format cannot hide on both sides.
``tests/test_simulator_models.py`` checks every field against ``PureCloudPlatformClientV2``
269.0.0's models: ``eventTime`` and ``status.offsetMs`` move with the call, each alternative
carries ``words`` and ``decoratedWords``, and an interim hypothesis's ``durationMs`` is that
of the words heard so far.

Each call: two speakers taking turns. For Genesys, each utterance goes out as one to three
interim hypotheses (growing prefixes of the sentence) and then a final; a keepalive opens the
session and follows every 5 minutes of it, and ``SESSION_ENDED`` closes it. For the fragment
stream, each utterance goes out as a few pieces of text that concatenate to the sentence, the
last one final.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Sentences chosen to exercise escaping: quotes, backslashes, commas, equals signs, accents,
# CJK, emoji, apostrophes. None has a newline (the one documented normalisation).
SENTENCES = [
    "Thank you for calling, how can I help you today?",
    "I'd like to check the balance on my account.",
    'She said "the bill is wrong" twice.',
    "My reference is A-12,345 = order 678.",
    "The path is C:\\Users\\billing\\invoice.pdf",
    "Je voudrais parler à quelqu'un, s'il vous plaît.",
    "Können Sie mir bitte helfen?",
    "お問い合わせありがとうございます。",
    "That's great 👍 thanks so much!",
    "Could you spell that for me, letter by letter?",
    "The café's naïve façade was repainted.",
    "Let me transfer you to billing; please hold.",
    "Is there anything else I can do for you?",
    "No, that's everything. Goodbye!",
]


@dataclass(frozen=True, slots=True)
class SimUtterance:
    conversation_id: str
    utterance_id: str
    channel: str  # INTERNAL (agent) or EXTERNAL (customer)
    speaker: str
    text: str
    confidence: float
    offset_ms: int
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Call:
    conversation_id: str
    communication_id: str
    session_start_ms: int
    utterances: tuple[SimUtterance, ...]


@dataclass(frozen=True, slots=True)
class SimFrame:
    """One text frame to send, and the utterances it completes."""

    topic: str
    text: str
    conversation_id: str
    finals: tuple[SimUtterance, ...] = ()  # the utterances it completes (several: batched)
    pieces: tuple[str, ...] = ()  # fragment stream: the whole utterance's pieces, on the final
    session_end: bool = False
    at_ms: int = 0  # when in the call (epoch ms) the platform sends it


CARD_SENTENCE = "Sure, my card number is 4111 1111 1111 1111 and it expires next year."
"""What the first caller says with ``card``: a test card number, Luhn-valid (Visa's)."""


def make_calls(
    count: int,
    utterances: int,
    seed: int,
    epoch_ms: int,
    spacing_ms: int = 1_000,
    *,
    card: bool = False,
) -> list[Call]:
    """``count`` calls of ``utterances`` each, starting ``spacing_ms`` apart from ``epoch_ms``;
    with ``card``, the first call's first customer utterance is :data:`CARD_SENTENCE` (the
    same draws either way: without it, the calls are exactly as they were)."""
    rng = random.Random(seed)
    calls = []
    for c in range(count):
        conversation_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        start = epoch_ms + c * spacing_ms
        offset = rng.randrange(200, 2_000)
        items = []
        for u in range(utterances):
            agent = u % 2 == 0
            duration = rng.randrange(800, 6_000)
            items.append(
                SimUtterance(
                    conversation_id=conversation_id,
                    utterance_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    channel="INTERNAL" if agent else "EXTERNAL",
                    speaker="agent" if agent else "customer",
                    text=_text(rng.choice(SENTENCES), card and c == 0 and u == 1),
                    confidence=round(rng.uniform(0.6, 0.99), 3),
                    offset_ms=offset,
                    duration_ms=duration,
                )
            )
            offset += duration + rng.randrange(100, 1_500)
        calls.append(
            Call(
                conversation_id,
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                start,
                tuple(items),
            )
        )
    return calls


def transcription_topic(conversation_id: str) -> str:
    return f"v2.conversations.{conversation_id}.transcription"


KEEPALIVE_MS = 300_000
"""A transcript-less SESSION_ONGOING message opens each session and follows every 5 minutes
while it lasts (developer.genesys.cloud, "Transcription Notifications": "Flow of Messages")."""

PROGRAM_ID = "6a4f5d2c-0b1e-4c3d-9e8f-7a6b5c4d3e2f"
"""The Speech and Text Analytics program of every simulated call (the platform names one)."""
AGENT_ASSISTANT_ID = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"


def _envelope(
    call: Call,
    transcripts: list[dict[str, object]],
    status: str,
    rng: random.Random,
    at_ms: int,
) -> str:
    """One ``TranscriptionTopicTranscriptionMessage``; ``at_ms`` is when, in session time."""
    body = {
        "eventTime": iso_ms(call.session_start_ms + at_ms),
        "organizationId": "00000000-0000-4000-8000-000000000000",
        "conversationId": call.conversation_id,
        "communicationId": call.communication_id,
        "sessionStartTimeMs": call.session_start_ms,
        "transcriptionStartTimeMs": call.session_start_ms - 47,
        "transcripts": transcripts,
        "status": {"offsetMs": at_ms, "status": status},
        "speechTextAnalyticsProgramId": PROGRAM_ID,
    }
    return json.dumps(
        {
            "topicName": transcription_topic(call.conversation_id),
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": str(uuid.UUID(int=rng.getrandbits(128), version=4))},
        },
        ensure_ascii=False,
    )


def _words(u: SimUtterance, text: str, duration_ms: int, session_start_ms: int) -> list[object]:
    """``TranscriptionTopicTranscriptWord`` entries: the words of ``text``, evenly spread."""
    words = text.split(" ")
    step = duration_ms // len(words)
    return [
        {
            "confidence": u.confidence,
            "startTimeMs": session_start_ms + u.offset_ms + i * step,
            "offsetMs": u.offset_ms + i * step,
            "durationMs": step,
            "word": word,
        }
        for i, word in enumerate(words)
    ]


def _transcript(
    u: SimUtterance,
    text: str,
    confidence: float,
    final: bool,
    duration_ms: int,
    session_start_ms: int,
) -> dict[str, object]:
    """One ``TranscriptionTopicTranscriptResult``: an interim's duration is its prefix's."""
    words = _words(u, text, duration_ms, session_start_ms)
    return {
        "utteranceId": u.utterance_id,
        "isFinal": final,
        "channel": u.channel,
        "alternatives": [
            {
                "confidence": confidence,
                "offsetMs": u.offset_ms,
                "durationMs": duration_ms,
                "transcript": text,
                "words": words,
                "decoratedTranscript": text,
                "decoratedWords": words,
            }
        ],
        "agentAssistantId": AGENT_ASSISTANT_ID,
        "engineProvider": "GENESYS",
        "engineId": "sim",
        "engineName": "simulator",
        "dialect": "en-US",
        "speechTextAnalyticsProgramId": PROGRAM_ID,
        "agentAssistEnabled": False,
        "voiceTranscriptionEnabled": True,
    }


def genesys_frames(call: Call, rng: random.Random, batch: float = 0.0) -> Iterator[SimFrame]:
    """The notification frames of one call, in order.

    ``batch``: how likely a transcript waits to go out in one message with the next one, as
    the platform groups them ("periodically grouped into TranscriptionMessages", usually
    within ~35 s; a message may then finalize several utterances). 0 keeps one transcript a
    message, and the same frames for the same seed.
    """
    topic = transcription_topic(call.conversation_id)
    start = call.session_start_ms
    yield SimFrame(
        topic, _envelope(call, [], "SESSION_ONGOING", rng, 0), call.conversation_id, at_ms=start
    )
    at = 0
    keepalive_at = KEEPALIVE_MS
    pending: list[tuple[dict[str, object], SimUtterance | None]] = []

    def send(at: int) -> SimFrame:
        frame = SimFrame(
            topic,
            _envelope(call, [t for t, _ in pending], "SESSION_ONGOING", rng, at),
            call.conversation_id,
            finals=tuple(u for _, u in pending if u is not None),
            at_ms=start + at,
        )
        pending.clear()
        return frame

    for u in call.utterances:
        while keepalive_at <= u.offset_ms:  # the session's keepalives, in session time
            keepalive = _envelope(call, [], "SESSION_ONGOING", rng, keepalive_at)
            yield SimFrame(topic, keepalive, call.conversation_id, at_ms=start + keepalive_at)
            keepalive_at += KEEPALIVE_MS
        words = u.text.split(" ")
        end = u.offset_ms + u.duration_ms
        hypotheses: list[tuple[dict[str, object], SimUtterance | None, int]] = []
        for i in range(rng.randrange(1, 4)):
            heard = max(1, len(words) * (i + 1) // 4)
            prefix = " ".join(words[:heard])
            duration = u.duration_ms * heard // len(words)
            confidence = round(u.confidence * rng.uniform(0.5, 0.95), 3)
            transcript = _transcript(u, prefix, confidence, False, duration, start)
            hypotheses.append((transcript, None, u.offset_ms + duration))
            if batch == 0:  # as before batching existed: the same rng calls, the same frames
                at = hypotheses[-1][2]
                pending.append(hypotheses[-1][:2])
                yield send(at)
        final = _transcript(u, u.text, u.confidence, True, u.duration_ms, start)
        hypotheses.append((final, u, end))
        for transcript, finalized, when in hypotheses if batch else hypotheses[-1:]:
            at = when
            pending.append((transcript, finalized))
            if not batch or rng.random() >= batch:
                yield send(at)
    if pending:
        yield send(at)
    yield SimFrame(
        topic,
        _envelope(call, [], "SESSION_ENDED", rng, at + 500),
        call.conversation_id,
        session_end=True,
        at_ms=start + at + 500,
    )


def fragment_frames(call: Call, rng: random.Random) -> Iterator[SimFrame]:
    """The reference design's fragment frames of one call, in order."""
    for u in call.utterances:
        cuts = sorted(rng.sample(range(1, len(u.text)), k=min(2, len(u.text) - 1)))
        pieces = [u.text[a:b] for a, b in zip([0, *cuts], [*cuts, len(u.text)], strict=True)]
        start = call.session_start_ms + u.offset_ms
        for i, piece in enumerate(pieces):
            final = i == len(pieces) - 1
            confidence = u.confidence if final else round(u.confidence * 0.9, 3)
            frame = {
                "utteranceId": u.utterance_id,
                "speaker": u.speaker,
                "text": piece,
                "confidence": confidence,
                "startTime": iso_ms(start) if i % 2 == 0 else start,
                "endTime": start + u.duration_ms,
                "isFinal": final,
                "conversationId": call.conversation_id,
            }
            yield SimFrame(
                "",
                json.dumps(frame, ensure_ascii=False),
                call.conversation_id,
                finals=(u,) if final else (),
                pieces=tuple(pieces) if final else (),
                at_ms=start + u.duration_ms * (i + 1) // len(pieces),
            )


def iso_ms(ms: int) -> str:
    """ISO-8601 UTC with milliseconds (the platform's date-time format)."""
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def interleave(streams: list[Iterator[SimFrame]], rng: random.Random) -> Iterator[SimFrame]:
    """Frames of all calls, mixed as concurrent calls would be, each call in its own order."""
    live = list(streams)
    while live:
        stream = rng.choice(live)
        frame = next(stream, None)
        if frame is None:
            live.remove(stream)
        else:
            yield frame


def _text(sentence: str, card: bool) -> str:
    return CARD_SENTENCE if card else sentence


def stream_frames(
    calls: list[Call],
    source: str,
    seed: int,
    queue_id: str | None = None,
    *,
    by_time: bool = False,
    batch: float = 0.0,
) -> Iterator[SimFrame]:
    """Every frame of ``calls`` in the order the simulator sends them (the same seed, the
    same order): each call's frames in order, the calls interleaved at random, or by
    ``at_ms`` (``by_time``, the simulator's ``--speech-time``). With ``queue_id`` (the
    Notifications source) each call is first announced on that queue's topic."""
    rng = random.Random(seed + 1)

    def make(call: Call, call_rng: random.Random) -> Iterator[SimFrame]:
        if source == "fragments":
            return fragment_frames(call, call_rng)
        return genesys_frames(call, call_rng, batch)

    def call_frames(call: Call, call_rng: random.Random) -> Iterator[SimFrame]:
        if queue_id and source == "notifications":
            topic = f"v2.routing.queues.{queue_id}.conversations"
            body = {"id": call.conversation_id, "participants": []}
            yield SimFrame(
                topic,
                json.dumps({"topicName": topic, "eventBody": body}),
                call.conversation_id,
                at_ms=call.session_start_ms,
            )
        yield from make(call, call_rng)

    streams = [call_frames(call, random.Random(rng.random())) for call in calls]
    if by_time:
        return heapq.merge(*streams, key=lambda frame: frame.at_ms)
    return interleave(streams, rng)


def truth_record(u: SimUtterance, call_start_ms: int) -> dict[str, object]:
    """What a correct worker must persist for the utterance ``u``."""
    start = call_start_ms + u.offset_ms
    return {
        "conversationId": u.conversation_id,
        "utteranceId": u.utterance_id,
        "speaker": u.speaker,
        "text": u.text,
        "startMs": start,
        "endMs": start + u.duration_ms,
        "confidence": u.confidence,
    }
