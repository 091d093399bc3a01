"""The per-event rules: what the worker does with each thing a source hands it. Pure.

A source delivers one parsed event per frame (a Genesys transcription message, one fragment
of the fragment stream, or a malformed frame). :class:`Router` feeds the fragments to the
coalescer and turns everything into *actions* for the worker to carry out: put an utterance
in the ring, set a frame or a fragment aside in the dead-letter file. It keeps the counts
of what it saw. No Trio, no I/O: the rules are tested as plain function calls
(``tests/test_router.py``), and the worker (``worker.py``) only moves data.

The rules:

* a malformed frame: set aside whole, with the parser's reason;
* a transcription message with unreadable transcripts: the frame is set aside once, the
  readable transcripts of the same message are used;
* a re-delivered final (a reconnect, an overlap of two sockets): counted and ignored;
* text appended to an utterance that was already final (fragment stream): set aside, since it
  would otherwise vanish;
* a transcription session that ended, seen (``SESSION_ENDED``) or not (``SessionLost``: silent
  past the platform's keepalive): its pending utterances are flushed as partials;
* every utterance passes the screen (``sensitive.py``) on its way out: card numbers and the
  other kinds asked for are replaced by labels before the ring, and a speaker's final that
  ends in what may be the start of a card is held until the next group, or the bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from .coalesce import Coalescer, Duplicate
from .model import Fragment, Malformed, Merge, SessionLost, Utterance
from .sensitive import Screen
from .wire.genesys import Transcription

SourceEvent = Transcription | Fragment | Malformed | SessionLost
"""What a source hands the worker for each frame it read (or, ``SessionLost``, for a
conversation whose frames stopped)."""


class Enqueue(msgspec.Struct, frozen=True, gc=False):
    utterance: Utterance


class SetAsideFrame(msgspec.Struct, frozen=True, gc=False):
    reason: str


class SetAsideFragment(msgspec.Struct, frozen=True, gc=False):
    fragment: Fragment
    reason: str


Action = Enqueue | SetAsideFrame | SetAsideFragment


PROBLEMS_QUOTED = 3
"""A frame's dead-letter reason quotes this many of its unreadable transcripts' problems."""


def problems_reason(problems: Sequence[str]) -> str:
    """One reason for a frame with unreadable transcripts: the first few, and how many."""
    quoted = "; ".join(problems[:PROBLEMS_QUOTED])
    if len(problems) <= PROBLEMS_QUOTED:
        return quoted
    return f"{quoted}; and {len(problems) - PROBLEMS_QUOTED:,} more unreadable transcripts"


@dataclass(slots=True)
class RouterCounts:
    frames: int = 0
    malformed: int = 0
    transcript_problems: int = 0
    fragments: int = 0
    duplicates: int = 0
    finals: int = 0
    partials: int = 0
    sessions_lost: int = 0


class Router:
    """Events in, actions out; see the module docstring for the rules."""

    def __init__(self, coalescer: Coalescer, screen: Screen) -> None:
        self.coalescer = coalescer
        self.screen = screen
        self.counts = RouterCounts()

    @property
    def pending(self) -> int:
        """Utterances not yet out: awaiting their final, or held by the screen."""
        return self.coalescer.pending + self.screen.held

    def route(self, event: SourceEvent, now_ms: int, tick_ms: int) -> list[Action]:
        """The actions ``event`` calls for, at epoch ``now_ms`` and monotonic ``tick_ms``
        (the coalescer's two clocks, ``Coalescer.feed``)."""
        counts = self.counts
        if isinstance(event, SessionLost):
            counts.sessions_lost += 1
            return self._ended(event.conversation_id)
        counts.frames += 1
        if isinstance(event, Malformed):
            counts.malformed += 1
            return [SetAsideFrame(event.reason)]
        actions: list[Action] = []
        fragments: Sequence[Fragment]
        if isinstance(event, Transcription):
            if event.problems:  # the frame once, however many of its transcripts are bad
                counts.transcript_problems += len(event.problems)
                actions.append(SetAsideFrame(problems_reason(event.problems)))
            fragments = event.fragments
        else:
            fragments = (event,)
        for fragment in fragments:
            counts.fragments += 1
            for result in self.coalescer.feed(fragment, now_ms, tick_ms):
                if isinstance(result, Duplicate):
                    counts.duplicates += 1
                    if self.coalescer.merge is Merge.APPEND and not result.fragment.is_final:
                        actions.append(SetAsideFragment(result.fragment, result.reason))
                elif result.final:
                    actions += [self._enqueue(u) for u in self.screen.final(result, tick_ms)]
                else:
                    actions.append(self._enqueue(self.screen.partial(result)))
        if isinstance(event, Transcription) and event.session_ended:
            actions.extend(self._ended(event.conversation_id))
        return actions

    def expire(self, tick_ms: int) -> list[Enqueue]:
        """Utterances idle past the coalescer's timeout (monotonic ``tick_ms``), as partials,
        and what the screen held past its bound."""
        held = [self._enqueue(u) for u in self.screen.due(tick_ms)]
        return held + self._partials(self.coalescer.expire(tick_ms))

    def flush(self) -> list[Enqueue]:
        """Everything pending, as partials, and everything held (shutdown)."""
        held = [self._enqueue(u) for u in self.screen.release()]
        return held + self._partials(self.coalescer.flush())

    def _ended(self, conversation_id: str) -> list[Action]:
        held = [self._enqueue(u) for u in self.screen.release(conversation_id)]
        return [*held, *self._partials(self.coalescer.flush(conversation_id))]

    def _partials(self, utterances: list[Utterance]) -> list[Enqueue]:
        return [self._enqueue(self.screen.partial(u)) for u in utterances]

    def _enqueue(self, utterance: Utterance) -> Enqueue:
        if utterance.final:
            self.counts.finals += 1
        else:
            self.counts.partials += 1
        return Enqueue(utterance)
