"""The values that flow through the worker: fragments in, utterances out.

Everything here is a frozen msgspec ``Struct``, so a value can be shared between the reader,
the coalescer and the writer without anyone changing it under another's feet, and made in
~0.1 us (a frozen dataclass's ``__init__`` takes ~1.4 us: several of them a frame, on the
path every frame takes; ``benchmarks/README.md``). Extras are kept as tuples of pairs (not
dicts) for the same reason: hashable and immutable. No value holds a container that could
close a cycle, so none is tracked by the garbage collector (``gc=False``).
"""

from __future__ import annotations

import enum

import msgspec

Extras = tuple[tuple[str, str | int], ...]
"""Source-specific attributes (communicationId, dialect, engine...), in a stable order."""

UNKNOWN_SPEAKER = "unknown"
LIVE = "live"
BACKFILL = "backfill"


class Merge(enum.Enum):
    """How later fragments of one utterance combine with earlier ones.

    APPEND: the fragment stream of the reference design sends pieces of text; they are
    concatenated in arrival order. REVISE: Genesys sends whole hypotheses of the utterance;
    a later one replaces the earlier one and the final one locks it.
    """

    APPEND = "append"
    REVISE = "revise"


class Fragment(msgspec.Struct, frozen=True, gc=False):
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


class Utterance(msgspec.Struct, frozen=True, gc=False):
    """A complete utterance, ready to persist.

    ``final`` is False for a partial: an utterance flushed at shutdown, at the end of its
    session, or after it went idle, before its final fragment arrived. ``origin`` says how it
    came: ``live`` from the source, ``backfill`` from the post-call transcript of a call with a
    gap (``backfill.py``).
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
    origin: str = LIVE

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def key(self) -> tuple[str, str]:
        return (self.conversation_id, self.utterance_id)


class SessionLost(msgspec.Struct, frozen=True, gc=False):
    """A followed conversation that went silent past the platform's keepalive: its session
    ended unseen (``liveness.py``); what is pending of it is flushed as partials."""

    conversation_id: str
    silent_ms: int


class Malformed(msgspec.Struct, frozen=True, gc=False):
    """A frame that could not be understood; ``reason`` says why, ``excerpt`` shows the start."""

    reason: str
    excerpt: str = ""


class Ignored(msgspec.Struct, frozen=True, gc=False):
    """A well-formed frame that carries nothing for us (an unknown topic, say)."""

    reason: str


def excerpt_of(frame: str | bytes, limit: int = 120) -> str:
    """The first ``limit`` characters of a frame, for log lines and dead letters."""
    if isinstance(frame, bytes):
        frame = frame[: limit * 4].decode("utf-8", errors="replace")
    return frame if len(frame) <= limit else frame[:limit] + "…"
