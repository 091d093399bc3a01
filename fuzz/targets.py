"""Fuzz targets: each takes arbitrary bytes and raises only when an invariant breaks.

The parsers must never raise on any input, and their fast paths (the msgspec decoders) must
give either nothing or exactly what the tolerant parsers give. The coalescer is driven by a
tiny instruction set decoded from the bytes (feed a fragment, expire, flush one conversation),
and checked against the promises it makes: no utterance emitted twice as final, pending
state within its bound, and in append mode no text lost or reordered.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from trio_transcripts.coalesce import Coalescer, Duplicate
from trio_transcripts.gapfill import plan
from trio_transcripts.model import Fragment, Malformed, Merge, Utterance
from trio_transcripts.sensitive import Kind, Screen, redact
from trio_transcripts.wire.analytics import parse_details
from trio_transcripts.wire.fragments import parse_fragment, read_fragment, strict_fragment
from trio_transcripts.wire.genesys import (
    parse_notification,
    read_notification,
    strict_transcription,
)
from trio_transcripts.wire.transcript import (
    PostCallTranscript,
    parse_transcript,
    parse_transcript_urls,
)

ALL_KINDS = frozenset(Kind)

JSON_LIMITS = ("overflows a double", "digits", "nests too deeply")
"""The tolerant parser's refusals of valid JSON for Python's reasons, in fields the fast path
does not read (see ``trio_transcripts/wire/schema.py``): the one place the two may differ."""


def fast_path_agrees(fast: object, tolerant: object) -> bool:
    """The fast path gave nothing, or the tolerant parser's event (or JSON_LIMITS held)."""
    if fast is None or fast == tolerant:
        return True
    return isinstance(tolerant, Malformed) and any(w in tolerant.reason for w in JSON_LIMITS)


def genesys(data: bytes) -> None:
    for frame in (data, data.decode("utf-8", errors="replace")):
        for decorated in (False, True):
            event = parse_notification(frame, decorated=decorated)
            fast = strict_transcription(frame, decorated=decorated)
            assert fast is None or fast == event, "parse_notification ignored its fast path"
            tolerant = read_notification(frame, decorated=decorated)
            assert fast_path_agrees(fast, tolerant), "fast and tolerant differ"


def fragments(data: bytes) -> None:
    for frame in (data, data.decode("latin-1")):
        event = parse_fragment(frame, conversation_id="fuzz")
        fast = strict_fragment(frame, conversation_id="fuzz")
        assert fast is None or fast == event, "parse_fragment ignored its fast path"
        tolerant = read_fragment(frame, conversation_id="fuzz")
        assert fast_path_agrees(fast, tolerant), "fast and tolerant differ"


def coalescer(data: bytes) -> None:
    coalescer = Coalescer(Merge.APPEND, max_pending=3, idle_timeout_ms=5)
    sent: dict[tuple[str, str], str] = {}
    got: dict[tuple[str, str], str] = {}
    finals: set[tuple[str, str]] = set()
    now = 0

    def take(events: list[Utterance] | list[Utterance | Duplicate]) -> None:
        for event in events:
            if isinstance(event, Duplicate):
                continue
            if event.final:
                assert event.key not in finals, f"{event.key} emitted twice as final"
                finals.add(event.key)
            got[event.key] = got.get(event.key, "") + event.text

    for i in range(0, len(data) - 1, 2):
        op, arg = data[i], data[i + 1]
        now += op & 3
        if op >> 6 == 3:
            take(coalescer.expire(now))
        elif op >> 6 == 2 and op & 4:
            take(coalescer.flush(f"c{arg % 3}"))
        else:
            key = (f"c{arg % 3}", f"u{(arg >> 2) % 5}")
            fragment = Fragment(
                key[0], key[1], "agent", chr(0x20 + (op & 0x3F)), None, None, None, bool(op & 0x80)
            )
            events = coalescer.feed(fragment, now, now)
            if not any(isinstance(e, Duplicate) for e in events):
                sent[key] = sent.get(key, "") + fragment.text
            take(events)
        assert coalescer.pending <= 3
    take(coalescer.flush())
    assert got == sent, "append text lost or reordered"


def postcall(data: bytes) -> None:
    """The post-call answers (transcript documents, URL listings, analytics details) never
    raise, and every phrase read is either written by a backfill with nothing stored or
    accounted for, once."""
    for body in (data, data.decode("utf-8", errors="replace")):
        parse_transcript_urls(body)
        parse_details(body)
        transcript = parse_transcript(body, "c", "m")
        if isinstance(transcript, PostCallTranscript):
            for phrase in transcript.phrases:
                assert phrase.text and phrase.start_ms >= 0 and phrase.duration_ms >= 0
            planned = plan(transcript, None, [])
            assert len(planned.utterances) == len(transcript.phrases), "a phrase not written"


def sensitive(data: bytes) -> None:
    """The screen never raises; redaction is idempotent; what it lets out of a speaker's
    finals (split at each newline of the input) is each of them once; a frame set aside
    comes back as text, whatever it holds, and one that is not JSON as the slow reading
    would have it (the one scan says no only where that changes nothing)."""
    text = data.decode("utf-8", errors="replace")
    once, _ = redact(text, ALL_KINDS)
    assert redact(once, ALL_KINDS)[0] == once, "redaction is not idempotent"
    screen = Screen(ALL_KINDS)
    parts = text.split("\n")[:5]
    out = []
    for i, part in enumerate(parts):
        out += screen.final(Utterance("c", f"u{i}", "customer", part, None, i, i, True, 1), i)
    out += screen.release()
    assert sorted(u.utterance_id for u in out) == sorted(f"u{i}" for i in range(len(parts)))
    assert isinstance(screen.frame(data), str)
    cut = "{" + text
    if "\\" not in cut and not _parses(cut):
        assert screen.frame(cut) == screen._alone(cut, only_after_card_words=True), "scan said no"


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


TARGETS: dict[str, Callable[[bytes], None]] = {
    "genesys": genesys,
    "fragments": fragments,
    "coalescer": coalescer,
    "postcall": postcall,
    "sensitive": sensitive,
}
