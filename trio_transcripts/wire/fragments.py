"""Fragment-stream frames -> :class:`~trio_transcripts.model.Fragment`. Pure; never raises.

The format of our reference design: one JSON object per frame,
``{"utteranceId", "speaker", "text", "confidence", "startTime", "endTime", "isFinal"}``.
Only ``utteranceId`` is required. ``text`` defaults to ``""`` (a bare final marker is a
legitimate way to close an utterance), ``speaker`` to ``unknown``, ``isFinal`` to false.
A frame may carry its own ``conversationId``; otherwise the stream's configured one applies.
Times are ISO-8601 strings or epoch milliseconds (see :mod:`.instants`).
"""

from __future__ import annotations

from ..model import UNKNOWN_SPEAKER, Fragment, Malformed, excerpt_of
from . import schema
from .frames import DEFAULT_MAX_FRAME_BYTES, FieldReader, load_object
from .instants import parse_instant

FragmentEvent = Fragment | Malformed


def parse_fragment(
    frame: str | bytes,
    *,
    conversation_id: str,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> FragmentEvent:
    """Parse one fragment-stream frame; ``conversation_id`` applies when the frame has none.

    A well-formed frame goes by the fast path (:func:`strict_fragment`), anything else by
    :func:`read_fragment`."""
    fragment = strict_fragment(frame, conversation_id=conversation_id, max_bytes=max_bytes)
    if fragment is not None:
        return fragment
    return read_fragment(frame, conversation_id=conversation_id, max_bytes=max_bytes)


def strict_fragment(
    frame: str | bytes,
    *,
    conversation_id: str,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> Fragment | None:
    """The frame decoded by its schema (:mod:`.schema`), or ``None`` when anything about it
    is off; then :func:`read_fragment` says what. Where it gives a fragment, it is the one
    ``read_fragment`` gives (``tests/test_wire_fragments.py``). Never raises."""
    decoded = schema.decode(schema.fragment_decoder, frame, max_bytes)
    if decoded is None or not decoded.utterance_id:
        return None
    times: list[int | None] = []
    for raw in (decoded.start_time, decoded.end_time):
        parsed = None if raw is None else parse_instant(raw)
        if isinstance(parsed, str):
            return None
        times.append(parsed)
    return Fragment(
        conversation_id=decoded.conversation_id or conversation_id,
        utterance_id=decoded.utterance_id,
        speaker=decoded.speaker or UNKNOWN_SPEAKER,
        text=decoded.text or "",
        confidence=decoded.confidence,
        start_ms=times[0],
        end_ms=times[1],
        is_final=bool(decoded.is_final),
    )


def read_fragment(
    frame: str | bytes,
    *,
    conversation_id: str,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> FragmentEvent:
    """The tolerant parser: any frame, to a fragment or a precise ``Malformed``."""
    obj = load_object(frame, max_bytes=max_bytes)
    if isinstance(obj, Malformed):
        return obj
    r = FieldReader(obj)
    utterance_id = r.text("utteranceId")
    speaker = r.text("speaker")
    text = r.text("text")
    confidence = r.number("confidence")
    is_final = r.flag("isFinal")
    own_conversation = r.text("conversationId")
    times: list[int | None] = []
    for key in ("startTime", "endTime"):
        raw = obj.get(key)
        if raw is None:
            times.append(None)
            continue
        parsed = parse_instant(raw)
        if isinstance(parsed, str):
            r.errors.append(f"{key}: {parsed}")
            times.append(None)
        else:
            times.append(parsed)
    if not utterance_id:
        r.errors.append("missing utteranceId")
    if r.errors:
        return Malformed("; ".join(r.errors), excerpt_of(frame))
    assert utterance_id is not None
    return Fragment(
        conversation_id=own_conversation or conversation_id,
        utterance_id=utterance_id,
        speaker=speaker or UNKNOWN_SPEAKER,
        text=text or "",
        confidence=confidence,
        start_ms=times[0],
        end_ms=times[1],
        is_final=bool(is_final),
    )
