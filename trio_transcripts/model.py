"""The values that flow through the worker: fragments in, utterances out.

Everything here is a frozen, slotted dataclass, so a value can be shared between the reader,
the coalescer and the writer without anyone changing it under another's feet. Extras are kept
as tuples of pairs (not dicts) for the same reason: hashable and immutable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

Extras = tuple[tuple[str, str | int], ...]
"""Source-specific attributes (communicationId, dialect, engine...), in a stable order."""

UNKNOWN_SPEAKER = "unknown"


class Merge(enum.Enum):
    """How later fragments of one utterance combine with earlier ones.

    APPEND: the fragment stream of the reference design sends pieces of text; they are
    concatenated in arrival order. REVISE: Genesys sends whole hypotheses of the utterance;
    a later one replaces the earlier one and the final one locks it.
    """

    APPEND = "append"
    REVISE = "revise"


@dataclass(frozen=True, slots=True)
class Fragment:
    """One piece of transcript for one utterance, as a source delivered it.

    ``start_ms``/``end_ms`` are absolute UTC epoch milliseconds, or ``None`` when the source
    did not say; ``confidence`` is ``None`` when absent.
    """

    conversation_id: str
    utterance_id: str
    speaker: str
    text: str
    confidence: float | None
    start_ms: int | None
    end_ms: int | None
    is_final: bool
    extras: Extras = ()


@dataclass(frozen=True, slots=True)
class Utterance:
    """A complete utterance, ready to persist.

    ``final`` is False for a partial: an utterance flushed at shutdown, at the end of its
    session, or after it went idle, before its final fragment arrived.
    """

    conversation_id: str
    utterance_id: str
    speaker: str
    text: str
    confidence: float | None
    start_ms: int
    end_ms: int
    final: bool
    fragments: int
    extras: Extras = ()

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def key(self) -> tuple[str, str]:
        return (self.conversation_id, self.utterance_id)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that could not be understood; ``reason`` says why, ``excerpt`` shows the start."""

    reason: str
    excerpt: str = ""


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed frame that carries nothing for us (an unknown topic, say)."""

    reason: str


def excerpt_of(frame: str | bytes, limit: int = 120) -> str:
    """The first ``limit`` characters of a frame, for log lines and dead letters."""
    if isinstance(frame, bytes):
        frame = frame[: limit * 4].decode("utf-8", errors="replace")
    return frame if len(frame) <= limit else frame[:limit] + "…"
