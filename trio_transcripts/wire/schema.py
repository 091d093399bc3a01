"""The two wire formats as msgspec schemas: the decoders of the parsers' fast path. Pure.

A well-formed frame (the overwhelming majority) is decoded straight into these structs, in C,
with every field the tolerant parsers read declared with the type they accept there. Anything
these decoders refuse (a wrong type anywhere, invalid JSON or UTF-8, a lone surrogate, a
number out of range) makes the fast path give up, and the tolerant parser
(:mod:`.genesys`, :mod:`.fragments`) reads the frame instead, so bad input keeps its exact
``Malformed``/``problems`` treatment. Unknown fields are skipped, as the tolerant parsers
skip them; for a repeated key the last one wins, as in Python's ``json``.

One difference, on purpose: a field neither path reads may hold a number Python's ``json``
refuses (beyond a double, or an integer of more than 4,300 digits; RFC 8259 allows both) or
nest a little deeper than ``json`` can; the tolerant parser then calls the whole frame
malformed, the fast path reads the fields it needs. ``fuzz/targets.py`` checks that nothing
else differs.

msgspec rather than orjson: on the bench's notification frames (``benchmarks/README.md``)
msgspec decodes into these structs in ~1.3 us a frame, where ``orjson.loads`` alone takes
~2.6 us and the typed reads of the resulting dicts another ~8.5 us.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from .frames import size_over


class Alternative(msgspec.Struct, rename="camel", gc=False):
    transcript: str | None = None
    decorated_transcript: str | None = None
    confidence: float | None = None
    offset_ms: int | None = None
    duration_ms: int | None = None


class TranscriptResult(msgspec.Struct, rename="camel", gc=False):
    utterance_id: str | None = None
    is_final: bool | None = None
    channel: str | None = None
    alternatives: list[Alternative] | None = None
    dialect: str | None = None
    engine_provider: str | None = None
    engine_id: str | None = None
    engine_name: str | None = None


class Status(msgspec.Struct, gc=False):
    status: str | None = None


class TranscriptionBody(msgspec.Struct, rename="camel", gc=False):
    communication_id: str | None = None
    session_start_time_ms: int | None = None
    transcription_start_time_ms: int | None = None
    event_time: str | None = None
    status: Status | None = None
    transcripts: list[TranscriptResult] | None = None


class Envelope(msgspec.Struct, rename="camel", gc=False):
    """A Notifications frame whose body reads as a transcription message."""

    topic_name: str | None = None
    event_body: TranscriptionBody | None = None


class FragmentFrame(msgspec.Struct, rename="camel", gc=False):
    """One frame of the reference design's fragment stream."""

    utterance_id: str | None = None
    speaker: str | None = None
    text: str | None = None
    confidence: float | None = None
    is_final: bool | None = None
    conversation_id: str | None = None
    start_time: int | float | str | None = None
    end_time: int | float | str | None = None


envelope_decoder = msgspec.json.Decoder(Envelope)
fragment_decoder = msgspec.json.Decoder(FragmentFrame)

T = TypeVar("T")


def decode(decoder: msgspec.json.Decoder[T], frame: str | bytes, max_bytes: int) -> T | None:
    """``frame`` decoded by ``decoder``, or ``None`` when it refuses it. Never raises.

    Bytes are checked as UTF-8 first: msgspec skips unknown keys without checking them. A
    ``str`` holding a lone surrogate raises UnicodeEncodeError, a ValueError as msgspec's
    own errors are.
    """
    if size_over(frame, max_bytes) is not None:
        return None
    try:
        if isinstance(frame, bytes):
            frame = frame.decode("utf-8")
        return decoder.decode(frame)
    except (ValueError, RecursionError):
        return None
