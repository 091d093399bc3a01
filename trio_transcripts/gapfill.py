"""Which phrases of a post-call transcript fill a gap, and as which utterances. Pure.

The platform does not replay notifications: what it sent while we had no live socket (a
drop, a silent socket, the worker stopped) is gone from the live stream, but the post-call
transcript has it (``wire/transcript.py``). This module decides, phrase by phrase, what the
backfill writes (``backfill.py`` does the I/O):

1. **In a gap.** A gap is a stretch of our clock when messages could not reach us
   (:class:`Window`). A phrase's final message goes out after the phrase ends, "usually
   within about 35 seconds" (developer.genesys.cloud, "Transcription Notifications"), so a
   phrase is in a gap when its end lies within ``[start - DELIVERY_LAG_MS, end +
   CLOCK_SLACK_MS]`` of one: the lag covers that batching, the slack a platform clock ahead
   of ours. Without windows (the ``backfill`` command) every phrase is a candidate.
2. **Not stored already.** A candidate is skipped when the store holds

   * a *live final* utterance of the same conversation and speaker whose time overlaps the
     phrase's: they share a millisecond, as half-open intervals (``[a, b)`` and ``[c, d)``
     overlap when ``a < d`` and ``c < b``), an empty one standing for the instant it starts
     at. Touching is not overlapping: a live utterance ending at the millisecond the phrase
     starts does not cover it. A *partial* never covers a phrase: its text is incomplete,
     so the complete phrase is written beside it (``final=true`` finds one row per
     utterance);
   * or the phrase's own backfill row (the same :func:`backfill_id`): a backfill repeated
     writes nothing.

Each phrase written becomes an :class:`~trio_transcripts.model.Utterance` with ``origin``
``backfill``, ``final`` true, ``fragments`` 0 and an id made of the communication, the
phrase's start and its index, so writing it twice lands on the same point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from .model import BACKFILL, LIVE, Utterance
from .wire.transcript import Phrase, PostCallTranscript

DELIVERY_LAG_MS = 120_000
"""How long after a phrase ends its final message may still be on its way: the platform's
"usually about 35 seconds", with room for the unusual. A wider window costs nothing but a
few more candidates, which the overlap rule then keeps from being written twice."""
CLOCK_SLACK_MS = 10_000
"""How far the platform's clock may run ahead of ours."""


class Window(msgspec.Struct, frozen=True, gc=False):
    """A stretch of our clock (epoch ms) without a live socket for a conversation."""

    start_ms: int
    end_ms: int

    def holds(self, phrase: Phrase) -> bool:
        """Whether ``phrase``'s final message may have been sent in this window."""
        return self.start_ms - DELIVERY_LAG_MS <= phrase.end_ms <= self.end_ms + CLOCK_SLACK_MS


class StoredUtterance(msgspec.Struct, frozen=True, gc=False):
    """What the store holds of one utterance, as far as deciding coverage needs."""

    utterance_id: str
    speaker: str
    start_ms: int
    end_ms: int
    final: bool
    origin: str


class Plan(msgspec.Struct, frozen=True, gc=False):
    """What to write, and why each other phrase is not written (counts)."""

    utterances: tuple[Utterance, ...]
    outside_gaps: int = 0
    covered_live: int = 0
    already_backfilled: int = 0


def backfill_id(communication_id: str, start_ms: int, index: int) -> str:
    """The deterministic utterance id of a phrase: the same phrase, the same point."""
    return f"postcall:{communication_id}:{start_ms}:{index}"


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Half-open intervals that share a millisecond; an empty one is its start instant."""
    return a_start == b_start or (a_start < b_end and b_start < a_end)


def covers(stored: StoredUtterance, phrase: Phrase) -> bool:
    """A live final of the phrase's speaker overlapping it in time (see the module doc)."""
    return (
        stored.origin == LIVE
        and stored.final
        and stored.speaker == phrase.speaker
        and overlaps(stored.start_ms, stored.end_ms, phrase.start_ms, phrase.end_ms)
    )


def plan(
    transcript: PostCallTranscript,
    windows: Sequence[Window] | None,
    stored: Iterable[StoredUtterance],
) -> Plan:
    """The utterances to write for ``transcript``; ``windows`` None: every phrase is a
    candidate. ``stored`` is what the store holds of the conversation."""
    stored = list(stored)
    backfilled = {s.utterance_id for s in stored if s.origin == BACKFILL}
    live = [s for s in stored if s.origin == LIVE and s.final]
    outside = covered = already = 0
    out: list[Utterance] = []
    communication = transcript.communication_id
    for phrase in transcript.phrases:
        if windows is not None and not any(w.holds(phrase) for w in windows):
            outside += 1
            continue
        utterance_id = backfill_id(communication, phrase.start_ms, phrase.index)
        if utterance_id in backfilled:
            already += 1
            continue
        if any(covers(s, phrase) for s in live):
            covered += 1
            continue
        out.append(
            Utterance(
                conversation_id=transcript.conversation_id,
                utterance_id=utterance_id,
                speaker=phrase.speaker,
                text=phrase.text,
                confidence=phrase.confidence,
                start_ms=phrase.start_ms,
                end_ms=phrase.end_ms,
                final=True,
                fragments=0,
                extras=(("communicationId", communication),),
                origin=BACKFILL,
            )
        )
    return Plan(tuple(out), outside, covered, already)
